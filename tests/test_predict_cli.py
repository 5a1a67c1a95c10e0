"""digits-predict and digits-serve's command line (digits.app.cli), with a tiny model trained
here on the synthetic digits (never data/model, which a fresh clone does not have). The
Predictor, `prediction_json` and the not-a-digit rule: tests/test_app_predict.py."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import tomllib
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from digits.app.artifacts import APP_MODEL_FILE
from digits.app.cli import predict_main, serve_main

PROJECT = Path(__file__).parents[1]
RESULT_LINE = re.compile(  # four.png: 4 (97.1%)   top 3: 4 97.1%, 9 2.0%, 1 0.4%[   not a ...]
    r"^(?P<file>\S+): (?P<digit>\d) \([\d.]+%\)   top 3: \d [\d.]+%, \d [\d.]+%, \d [\d.]+%"
    r"(   not a digit\? .+)?$"
)


def digit_drawing(path: Path, fmt: str = "PNG") -> Path:
    """A hand-drawn-like 4 on a 300x400 sheet, off-centre."""
    sheet = Image.new("RGB", (300, 400), (240, 240, 235))
    pen = ImageDraw.Draw(sheet)
    pen.line([(150, 300), (150, 80), (60, 220), (200, 220)], fill=(20, 20, 40), width=20)
    sheet.save(path, format=fmt)
    return path


def run_predict(*argv: str | Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = predict_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_digit_probability_and_top_3_per_image(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    png = digit_drawing(tmp_path / "four.png")
    jpeg = digit_drawing(tmp_path / "four.jpg", "JPEG")

    code, out, err = run_predict(png, jpeg, "--model", model_file, capsys=capsys)

    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, (png, jpeg), strict=True):
        match = RESULT_LINE.match(line)
        assert match, line
        assert match["file"] == str(path)


def test_json_output_has_one_entry_per_file_in_order(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    png = digit_drawing(tmp_path / "four.png")

    code, out, _ = run_predict(png, png, "--json", "--model", model_file, capsys=capsys)

    assert code == 0
    report = json.loads(out)
    assert [entry["file"] for entry in report] == [str(png), str(png)]
    for entry in report:
        assert set(entry) == {
            "file",
            "digit",
            "probability",
            "probabilities",
            "top3",
            "not_a_digit",
        }
        assert len(entry["probabilities"]) == 10
        assert sum(entry["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert entry["top3"][0] == {"digit": entry["digit"], "probability": entry["probability"]}
        top = [item["probability"] for item in entry["top3"]]
        assert top == sorted(top, reverse=True)
        assert len(top) == 3
    assert report[0] == report[1]


def test_bad_files_are_reported_one_by_one_and_the_rest_still_processed(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = digit_drawing(tmp_path / "good.png")
    missing = tmp_path / "missing.png"
    text = tmp_path / "notes.jpg"
    text.write_text("shopping list")
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    too_large = tmp_path / "panorama.png"
    Image.new("1", (5000, 10), 1).save(too_large)
    bad = {
        missing: "no such file",
        text: "not a PNG or JPEG image",
        blank: "blank image",
        too_large: "over the limit of 4096x4096",
        tmp_path: "not a file",
    }

    code, out, err = run_predict(good, *bad, "--model", model_file, capsys=capsys)

    assert code == 1
    assert RESULT_LINE.match(out.strip()), out
    *errors, model = err.splitlines()  # which model read the good one comes last
    assert model.startswith(f"model: model.keras ({model_file}), md5 "), err
    assert len(errors) == len(bad)
    for line, (path, message) in zip(errors, bad.items(), strict=True):
        assert line.startswith(f"error: {path}: "), line
        assert message in line

    code, out, _ = run_predict(good, *bad, "--json", "--model", model_file, capsys=capsys)
    assert code == 1
    report = json.loads(out)
    assert [entry["file"] for entry in report] == [str(p) for p in (good, *bad)]
    assert "digit" in report[0]
    for entry, message in zip(report[1:], bad.values(), strict=True):
        assert set(entry) == {"file", "error"}
        assert message in entry["error"]


def test_a_missing_model_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = digit_drawing(tmp_path / "good.png")

    code, out, err = run_predict(good, "--model", tmp_path / "none.keras", capsys=capsys)

    assert code == 1
    assert out == ""
    assert "none.keras does not exist: make it with `dvc repro`" in err


def test_usage_errors_exit_with_2(capsys: pytest.CaptureFixture) -> None:
    for argv in ([], ["--bogus", "x.png"]):
        with pytest.raises(SystemExit) as exit_info:
            predict_main(argv)
        assert exit_info.value.code == 2
    assert "usage: digits-predict" in capsys.readouterr().err


def test_exit_codes_of_a_real_process(tmp_path: Path) -> None:
    """As the console script runs it: bad files only (TensorFlow is never loaded), no files."""
    code = "import sys; from digits.app.cli import predict_main; sys.exit(predict_main())"
    missing = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.png'}: no such file"
    usage = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2
    assert "the following arguments are required: IMAGE" in usage.stderr


def test_console_scripts_point_at_existing_functions() -> None:
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert set(scripts) == {"digits-predict", "digits-serve"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(import_module(module), function))


def test_output_reads_the_same_from_file_and_bytes(tmp_path: Path) -> None:
    """The command and the server bring images to MNIST's conventions the same way."""
    from digits.app.images import decode_image, read_image, to_mnist

    path = digit_drawing(tmp_path / "four.png")
    from_file = to_mnist(read_image(path))
    from_bytes = to_mnist(decode_image(path.read_bytes(), "body"))
    np.testing.assert_array_equal(from_file, from_bytes)


def stage_modules(pipeline: str) -> set[str]:
    """The stages/ modules a dvc.yaml's commands run."""
    text = (PROJECT / pipeline).read_text(encoding="utf-8")
    return set(re.findall(r"python -m stages\.(\w+)", text))


def test_the_pipeline_library_never_imports_the_app() -> None:
    """digits/app uses the pipeline's model; the pipeline (digits/*.py, stages/) stands alone.
    Only the app-model pipeline's own stages (other-handwriting, card-app: the app's model read
    the app's way) use the app's code."""
    app_only = stage_modules("app-model/dvc.yaml") - stage_modules("dvc.yaml")
    assert app_only
    library = [*PROJECT.glob("digits/*.py")]
    library += [path for path in PROJECT.glob("stages/*.py") if path.stem not in app_only]
    assert len(library) > 10
    for path in library:
        source = path.read_text(encoding="utf-8")
        assert "digits.app" not in source, f"{path.name} imports the recogniser app"
        assert "from digits import app" not in source, path.name


# --- what a user can get wrong, and what they did not ask for ----------------------------------


def lambda_model_file(path: Path) -> Path:
    """A model whose Lambda layer would run arbitrary code: Keras' safe mode refuses it."""
    model = keras.Sequential(
        [keras.Input(shape=(28, 28)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten()]
    )
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "not a usable Keras model: a .keras file is a zip archive; this is not one"),
        ("truncated", "not a usable Keras model: a .keras file is a zip archive; this is not one"),
        ("lambda", "not a usable Keras model: Requested the deserialization of a `Lambda` layer"),
        ("h5-name", "not a .keras file"),
        ("directory", "not a .keras file"),
    ],
)
def test_a_file_that_is_not_a_usable_model_is_one_line(
    kind: str, message: str, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """For digits-predict and digits-serve alike: the file named, what is wrong, exit 1."""
    bad = {
        "text": lambda: tmp_path / "notes.keras",
        "truncated": lambda: tmp_path / "truncated.keras",
        "lambda": lambda: lambda_model_file(tmp_path / "lambda.keras"),
        "h5-name": lambda: tmp_path / "model.h5",
        "directory": lambda: tmp_path,
    }[kind]()
    if kind == "text":
        bad.write_text("shopping list")
    elif kind == "truncated":
        data = model_file.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "h5-name":
        bad.write_bytes(model_file.read_bytes())
    good = digit_drawing(tmp_path / "four.png")

    for run in (
        lambda: predict_main([str(good), "--model", str(bad)]),
        lambda: serve_main(["--model", str(bad), "--port", "0"]),
    ):
        assert run() == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith(f"error: {bad}: {message}"), err
        assert "File not found" not in err


def quiet_environment() -> dict[str, str]:
    """The environment of a user's shell: without the TensorFlow settings conftest.py makes."""
    hidden = {"TF_CPP_MIN_LOG_LEVEL", "ONEDNN_MAX_CPU_ISA"}
    return {name: value for name, value in os.environ.items() if name not in hidden}


def test_a_run_prints_nothing_it_was_not_asked_for(model_file: Path, tmp_path: Path) -> None:
    """No TensorFlow start-up lines (oneDNN INFO) on stderr: only which model read the images,
    and the results on stdout."""
    code = "import sys; from digits.app.cli import predict_main; sys.exit(predict_main())"
    png = digit_drawing(tmp_path / "four.png")

    run = subprocess.run(
        [sys.executable, "-c", code, str(png), "--model", str(model_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=quiet_environment(),
    )

    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith(f"model: model.keras ({model_file}), md5 "), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert RESULT_LINE.match(run.stdout.strip())


def test_output_closed_early_is_a_quiet_exit(model_file: Path, tmp_path: Path) -> None:
    """`digits-predict a.png b.png | head -1`: the reader is gone before the results come."""
    code = "import sys; from digits.app.cli import predict_main; sys.exit(predict_main())"
    png = digit_drawing(tmp_path / "four.png")
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(png), str(png), "--model", str(model_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=quiet_environment(),
    )
    process.stdout.close()  # like `head` once it has its line, before TensorFlow has loaded
    try:
        err = process.stderr.read().decode()
        process.wait(timeout=120)
    finally:
        process.kill()
        process.stderr.close()

    assert err.startswith("model: "), err  # which model; no BrokenPipeError traceback
    assert err.count("\n") == 1, err
    assert process.returncode == 1


@pytest.mark.parametrize("main", [predict_main, serve_main])
def test_help_says_where_the_default_model_comes_from(main, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    # argparse wraps lines, at spaces and after hyphens: compare without any whitespace.
    text = "".join(capsys.readouterr().out.split())
    artifacts = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["artifacts"]
    app, pipeline = artifacts["digits-recogniser"]["path"], artifacts["digits-classifier"]["path"]
    expected = [
        f"Default, relative to the current folder (a clone of the project): {app} ",
        f"when it exists, else {pipeline} (digits-classifier",
        "`dvc pull app-model/dvc.yaml:card-app`",
        "`make app-model` (trains it: ",
        "(docs/experiments.json, row app-model)",
        "or a folder with a model.keras (and its model card, model.json)",
        "`make repro`",
        "`dvc pull`",
        "`dvc artifacts get REPO_URL digits-recogniser`",
        "Without --model, here: ",  # which model it would load (tests/test_app_artifacts)
    ]
    for words in expected:
        assert "".join(words.split()) in text, words


@pytest.mark.parametrize("command", ["digits-predict", "digits-serve"])
def test_version_is_the_installed_packages(command: str) -> None:
    """As installed (`make setup`): the console script, the version pip recorded for digits."""
    installed = importlib.metadata.version("digits")
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    assert installed == pyproject["project"]["version"]
    script = Path(sys.executable).parent / command
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout == f"{command} {installed}\n"


@pytest.mark.parametrize(
    ("main", "command"), [(predict_main, "digits-predict"), (serve_main, "digits-serve")]
)
def test_version_needs_no_other_argument(main, command: str, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"{command} {importlib.metadata.version('digits')}\n"


# --- hostile input: model files, many files, stdout and file names (issue 24) ----------------

# Runs a command and writes the peak RSS of that command (its only child) to argv[1], in KiB.
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as file:\n"
    "    file.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
MIB = 1 << 20


@dataclass
class BoundedRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    peak_rss_mib: float


def run_bounded(
    command: Sequence[str | Path | bytes],
    tmp_path: Path,
    *,
    timeout: float = 60,
    memory_limit: int | None = None,
    **popen: object,
) -> BoundedRun:
    """Run `command` under a wall-clock timeout (killed, and the test fails, when it runs over)
    and an optional address-space limit; measure its peak RSS."""
    rss_file = tmp_path / "peak-rss-kib"

    def limit_memory() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", MEASURE, rss_file, *command],
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        preexec_fn=limit_memory,
        start_new_session=True,  # its own process group, killed as one on a timeout
        **popen,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{command}: still running after {timeout} s")
    seconds = time.perf_counter() - started
    peak = int(rss_file.read_text()) / 1024 if rss_file.exists() else float("nan")
    return BoundedRun(process.returncode, out or b"", err, seconds, peak)


def console_script(name: str) -> Path:
    return Path(sys.executable).parent / name


def hostile_model_file(kind: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "/dev/zero via a symlink":
        path.symlink_to("/dev/zero")
    elif kind == "a FIFO":
        os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("kind", "problem"), [("/dev/zero via a symlink", "a character device"), ("a FIFO", "a FIFO")]
)
def test_a_model_path_that_is_no_regular_file_is_refused_at_once(
    kind: str, problem: str, tmp_path: Path
) -> None:
    """digits-predict and digits-serve, with --model and from the default path (and --help,
    which hashes the default model): /dev/zero is never read, a FIFO never opened."""
    png = digit_drawing(tmp_path / "four.png")
    given = hostile_model_file(kind, tmp_path / "m.keras")
    hostile_model_file(kind, tmp_path / APP_MODEL_FILE)
    refusal = f"not a usable Keras model: it is {problem}; a model is a regular .keras file"
    runs = {
        "predict --model": ([console_script("digits-predict"), png, "--model", given], given),
        "serve --model": ([console_script("digits-serve"), "--model", given, "--port", "0"], given),
        "predict, default": ([console_script("digits-predict"), png], Path(APP_MODEL_FILE)),
        "serve, default": ([console_script("digits-serve"), "--port", "0"], Path(APP_MODEL_FILE)),
    }
    for name, (command, path) in runs.items():
        run = run_bounded(command, tmp_path, timeout=60, memory_limit=3 << 30, cwd=tmp_path)
        err = run.stderr.decode()
        assert run.returncode == 1, (name, err)
        assert err == f"error: {path}: {refusal} of at most 64 MiB (67,108,864 bytes)\n", name
        assert run.stdout == b""
        assert run.seconds < 20, (name, run.seconds)
        assert run.peak_rss_mib < 500, (name, run.peak_rss_mib)

    helped = run_bounded(
        [console_script("digits-predict"), "--help"], tmp_path, memory_limit=3 << 30, cwd=tmp_path
    )
    assert helped.returncode == 0, helped.stderr
    assert "".join(f"{APP_MODEL_FILE}: {refusal}".split()) in "".join(
        helped.stdout.decode().split()
    )


def test_a_hostile_archive_is_refused_by_both_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """20,000 entries of one name, each 256 MiB as its directory says (zipfile's testzip would
    inflate for hours): one line, exit 1, before Keras."""
    path = tmp_path / "duplicates.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", b"{}")
            archive.writestr("model.weights.h5", b"")
            for _ in range(20_000):
                archive.writestr("assets/big", b"x")
            for info in archive.infolist():
                info.file_size = max(info.file_size, 256 * MIB)
    good = digit_drawing(tmp_path / "four.png")

    for run in (
        lambda: predict_main([str(good), "--model", str(path)]),
        lambda: serve_main(["--model", str(path), "--port", "0"]),
    ):
        started = time.perf_counter()
        assert run() == 1
        assert time.perf_counter() - started < 5
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"error: {path}: not a usable Keras model: its zip directory is ")
        assert "at most 64 KiB" in err
        assert err.count("\n") == 1, err


@pytest.fixture(scope="module")
def convolution_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (N, 28, 28) -> (N, 10) model whose one convolution outputs 100 KB per
    image, as the app's CNN does: memory grows with the images given to it at once."""
    from digits.model import save_model

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("conv") / "model.keras"
    save_model(model, path)
    return path


def tiny_pngs(folder: Path, count: int) -> list[Path]:
    """`count` 28x28 PNGs of a stroke (about 100 bytes each)."""
    folder.mkdir()
    sheet = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(sheet).line([(14, 4), (14, 24)], fill=0, width=3)
    paths = [folder / f"{number:05d}.png" for number in range(count)]
    for path in paths:
        sheet.save(path)
    return paths


def test_thousands_of_files_are_read_and_predicted_in_bounded_batches(
    convolution_model_file: Path, tmp_path: Path
) -> None:
    """3,000 files cost no more memory than one batch of 256 (in one batch, the convolution's
    output alone would be 3,000 x 100 KB = 300 MB); every file gets its line, in order."""
    paths = tiny_pngs(tmp_path / "pngs", 3000)
    peaks = {}
    for count in (256, 3000):
        run = run_bounded(
            [
                console_script("digits-predict"),
                "--model",
                convolution_model_file,
                *paths[:count],
            ],
            tmp_path,
            timeout=120,
            env=quiet_environment(),
        )
        assert run.returncode == 0, run.stderr.decode()
        lines = run.stdout.decode().splitlines()
        assert [line.split(":")[0] for line in lines] == [str(p) for p in paths[:count]]
        peaks[count] = run.peak_rss_mib
    assert peaks[3000] - peaks[256] < 60, peaks


def test_results_are_printed_batch_by_batch(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch is on stdout before the next batch's files are read; --json too, as one
    array. A first batch of bad files only loads no model, and a later one does."""
    from digits.app import cli

    good = digit_drawing(tmp_path / "four.png")
    missing = tmp_path / "missing.png"
    files = [missing, missing, good, good, missing, good]
    monkeypatch.setattr(cli, "BATCH_SIZE", 2)
    for json_output in (False, True):
        stdout = io.StringIO()
        monkeypatch.setattr(sys, "stdout", stdout)
        printed_before_read = []
        read_image = cli.read_image

        def recording_read(
            path: Path, read_image=read_image, stdout=stdout, printed=printed_before_read
        ) -> object:
            printed.append(len(stdout.getvalue()))
            return read_image(path)

        monkeypatch.setattr(cli, "read_image", recording_read)
        argv = [str(path) for path in files] + ["--model", str(model_file)]
        assert predict_main(argv + (["--json"] if json_output else [])) == 1
        out = stdout.getvalue()
        first, second, third = (printed_before_read[i] for i in (0, 2, 4))
        assert first == second == 0  # nothing to print for two missing files
        assert 0 < third < len(out)  # the second batch's results came before the third batch
        if json_output:
            report = json.loads(out)
            assert [entry["file"] for entry in report] == [str(path) for path in files]
            assert ["digit" in entry for entry in report] == [False, False, True, True, False, True]
        else:
            assert len(out.splitlines()) == 3
            assert out[:third].count("\n") == 2


def test_stdout_closed_is_one_error_line(model_file: Path, tmp_path: Path) -> None:
    """`digits-predict x.png >&-`: Python has no sys.stdout at all."""
    png = digit_drawing(tmp_path / "four.png")
    run = subprocess.run(
        [console_script("digits-predict"), png, "--model", model_file],
        stdout=None,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        timeout=120,
        env=quiet_environment(),
    )
    assert run.returncode == 1
    assert run.stderr.decode() == "error: standard output is closed: nowhere to print the results\n"


def test_a_full_disk_is_one_error_line(model_file: Path, tmp_path: Path) -> None:
    """`digits-predict x.png > /dev/full`: ENOSPC on the first flush, not a traceback."""
    png = digit_drawing(tmp_path / "four.png")
    for extra in ([], ["--json"]):
        with open("/dev/full", "wb") as full:
            run = subprocess.run(
                [console_script("digits-predict"), png, png, "--model", model_file, *extra],
                stdout=full,
                stderr=subprocess.PIPE,
                timeout=120,
                env=quiet_environment(),
            )
        assert run.returncode == 1
        errors = [
            line for line in run.stderr.decode().splitlines() if not line.startswith("model:")
        ]
        assert errors == [
            "error: cannot write the results to standard output: No space left on device"
        ], run.stderr.decode()


def test_file_names_reach_the_terminal_escaped(model_file: Path, tmp_path: Path) -> None:
    """Names that are not UTF-8 under PYTHONIOENCODING=utf-8 (an en_US.UTF-8 desktop), and
    names holding terminal escape sequences or a newline: printed escaped, one line each; no
    control character on stdout or stderr."""
    png = digit_drawing(tmp_path / "four.png")
    names = {
        b"caf\xe9.png": r"caf\xe9.png",
        b"red\x1b[31m.png": r"red\x1b[31m.png",
        b"two\nlines.png": r"two\nlines.png",
        b"\x1b]0;title\x07.png": r"\x1b]0;title\x07.png",
    }
    folder = os.fsencode(tmp_path)
    for name in names:
        with open(os.path.join(folder, name), "wb") as file:
            file.write(png.read_bytes())
    missing = os.path.join(folder, b"gone\x1b[2J\xff.png")
    env = {**quiet_environment(), "PYTHONIOENCODING": "utf-8"}

    run = subprocess.run(
        [
            console_script("digits-predict"),
            *(os.path.join(folder, name) for name in names),
            missing,
            b"--model",
            model_file,
        ],
        capture_output=True,
        timeout=120,
        env=env,
    )

    assert run.returncode == 1, run.stderr
    out, err = run.stdout.decode("ascii"), run.stderr.decode("utf-8")
    assert [line.split(": ")[0] for line in out.splitlines()] == [
        f"{tmp_path}/{shown}" for shown in names.values()
    ]
    assert err.splitlines()[0] == rf"error: {tmp_path}/gone\x1b[2J\xff.png: no such file"
    for text in (out, err):
        assert not any(ord(char) < 32 and char != "\n" for char in text)
        assert not any(0x7F <= ord(char) < 0xA0 for char in text)
