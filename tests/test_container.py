"""The Dockerfile: what the image is, and its entrypoint run from a plain venv built as the image
builds its own (no Docker here): the serve lock with its hashes, the package without its
dependencies, the image's environment variables, its command, the model where the image mounts
it, and its HEALTHCHECK."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from digits.onnx_export import onnx_bytes

PROJECT = Path(__file__).parents[1]
DOCKERFILE = (PROJECT / "Dockerfile").read_text(encoding="utf-8")
SERVE_LOCK = PROJECT / "requirements-serve.lock"
MOUNT = "/model"  # where the image expects the model folder


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n\s*",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


INSTRUCTIONS = instructions(DOCKERFILE)
FINAL = INSTRUCTIONS[max(i for i, (k, _) in enumerate(INSTRUCTIONS) if k == "FROM") :]


def final(keyword: str) -> list[str]:
    return [arguments for key, arguments in FINAL if key == keyword]


def image_environment() -> dict[str, str]:
    """The final stage's ENV lines (KEY=VALUE pairs; $PATH expanded against the test's)."""
    environment: dict[str, str] = {}
    for arguments in final("ENV"):
        for pair in arguments.split():
            key, value = pair.split("=", 1)
            environment[key] = value.replace("$PATH", os.environ["PATH"])
    return environment


def healthcheck_command() -> list[str]:
    (arguments,) = final("HEALTHCHECK")
    return json.loads(arguments.split(" CMD ", 1)[1])


def test_the_image_is_multi_stage_non_root_and_installs_only_the_serve_lock() -> None:
    stages = [arguments for key, arguments in INSTRUCTIONS if key == "FROM"]
    assert len(stages) >= 2
    (user,) = final("USER")
    assert user not in ("root", "0")
    installs = [
        arguments for key, arguments in INSTRUCTIONS if key == "RUN" and "pip install" in arguments
    ]
    assert any(
        "--require-hashes" in run and "-r requirements-serve.lock" in run for run in installs
    )
    assert all("--require-hashes" in run or "--no-deps" in run for run in installs)
    for keyword in ("HEALTHCHECK", "ENTRYPOINT", "CMD"):
        assert final(keyword), f"the final stage has no {keyword}"
    locked = re.findall(r"^([a-z0-9][a-z0-9._-]*)==", SERVE_LOCK.read_text(), re.MULTILINE)
    assert "onnxruntime" in locked
    assert not {"tensorflow", "tensorflow-cpu", "keras", "dvc"} & set(locked)


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain venv with what the image's build stage installs, the way it installs it."""
    base = tmp_path_factory.mktemp("image")
    source = base / "src"
    source.mkdir()
    for key, arguments in INSTRUCTIONS:  # the build stage's COPY lines (not COPY --from)
        if key == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            for name in sources:
                path = PROJECT / name
                if path.is_dir():
                    shutil.copytree(
                        path, source / name, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(path, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    lock = source / "requirements-serve.lock"
    subprocess.run([*pip, "--require-hashes", "--only-binary=:all:", "-r", lock], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", source], check=True, cwd=base)
    return venv


@pytest.mark.slow
def test_the_entrypoint_serves_the_mounted_model_from_the_serve_lock_alone(
    image_venv: Path, model_file: Path, tiny_model, tmp_path: Path
) -> None:
    mounted = tmp_path / "model"  # what `-v ...recogniser:/model:ro` puts at /model
    mounted.mkdir()
    shutil.copyfile(model_file, mounted / "model.keras")
    (mounted / "model.onnx").write_bytes(onnx_bytes(tiny_model))
    (entrypoint,) = (json.loads(arguments) for arguments in final("ENTRYPOINT"))
    (command,) = (json.loads(arguments) for arguments in final("CMD"))
    port = free_port()
    argv = [str(mounted) if arg == MOUNT else arg for arg in [*entrypoint, *command]]
    argv = [str(port) if arg == "8000" else arg for arg in argv]
    environment = {**os.environ, **image_environment()}
    environment["PATH"] = f"{image_venv / 'bin'}:{environment['PATH']}"
    environment.pop("PYTHONPATH", None)
    workdir = tmp_path / "workdir"  # not the project: nothing is read from a clone
    workdir.mkdir()
    with subprocess.Popen(
        argv,
        env=environment,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            said = []
            while (line := process.stdout.readline()) and "http://" not in line:
                said.append(line)
            assert "http://" in line, "".join(said)
            body = json.dumps({"pixels": [[0.0] * 12 + [1.0] * 4 + [0.0] * 12] * 28}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/predict",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert json.loads(response.read())["digit"] in range(10)
            health = [arg.replace("8000", str(port)) for arg in healthcheck_command()]
            checked = subprocess.run(health, env=environment, capture_output=True, timeout=30)
            assert checked.returncode == 0, checked.stderr
        finally:
            process.terminate()
    venv_python = image_venv / "bin" / "python"
    found = subprocess.run(
        [
            venv_python,
            "-c",
            "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('keras'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "None None"  # the image's environment has no TensorFlow


@pytest.mark.slow
def test_a_mounted_model_without_its_onnx_file_is_one_clear_error(
    image_venv: Path, model_file: Path, tmp_path: Path
) -> None:
    mounted = tmp_path / "model"
    mounted.mkdir()
    shutil.copyfile(model_file, mounted / "model.keras")
    (entrypoint,) = (json.loads(arguments) for arguments in final("ENTRYPOINT"))
    (command,) = (json.loads(arguments) for arguments in final("CMD"))
    argv = [str(mounted) if arg == MOUNT else arg for arg in [*entrypoint, *command]]
    environment = {**os.environ, **image_environment()}
    environment["PATH"] = f"{image_venv / 'bin'}:{environment['PATH']}"

    run = subprocess.run(
        argv, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        f"error: {mounted / 'model.keras'}: Keras is not installed here (keras is missing), so "
        "only the model's ONNX export can run: put model.onnx beside it (the export stage "
        "writes it)"
    )
