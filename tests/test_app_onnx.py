"""The app runs the model's ONNX export with ONNX Runtime when it is beside the .keras file
(digits/app/predict.py: predictor_for), gives Keras' answers, and then never imports TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers.pipeline import PROJECT
from onnx import TensorProto, helper

from digits.app.predict import OnnxPredictor, Predictor, predictor_for
from digits.errors import DigitsError
from digits.onnx_export import onnx_bytes


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory, model_file: Path, tiny_model) -> Path:
    """model.keras (the tiny MLP) with its ONNX export beside it, as the recogniser folder."""
    folder = tmp_path_factory.mktemp("recogniser")
    shutil.copyfile(model_file, folder / "model.keras")
    (folder / "model.onnx").write_bytes(onnx_bytes(tiny_model))
    return folder


def test_the_onnx_file_beside_the_model_is_run_and_gives_keras_answers(
    model_folder: Path, model_file: Path, synthetic_data: dict
) -> None:
    images = synthetic_data["test"][0]

    onnx = predictor_for(model_folder / "model.keras")
    keras = predictor_for(model_file)  # no .onnx beside it: the Keras reference

    assert isinstance(onnx, OnnxPredictor)
    assert isinstance(keras, Predictor)
    got, expected = onnx.probabilities(images), keras.probabilities(images)
    assert got.argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()
    assert np.abs(got - expected).max() <= 1e-5


def test_a_broken_onnx_file_is_named_and_not_replaced_by_keras(
    model_folder: Path, tmp_path: Path
) -> None:
    shutil.copyfile(model_folder / "model.keras", tmp_path / "model.keras")
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")

    with pytest.raises(DigitsError, match=r"model\.onnx: not a usable ONNX model"):
        predictor_for(tmp_path / "model.keras")


def test_an_onnx_model_of_other_shapes_is_refused(tmp_path: Path) -> None:
    # (N, 28, 28) -> (N, 784): a valid ONNX model, but not a classifier of ten digits
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1)],
        "flatten",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 784])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())

    with pytest.raises(DigitsError, match=f"{path}: the ONNX model maps .* expected one"):
        OnnxPredictor.from_file(path)


def test_a_server_on_the_onnx_model_answers_without_importing_tensorflow(
    model_folder: Path,
) -> None:
    # The server process itself says, as it exits, whether TensorFlow was imported.
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules,"
        " 'keras' in sys.modules, file=sys.stderr, flush=True))\n"
        "from digits.app.cli import serve_main\n"
        "sys.exit(serve_main())\n"
    )
    argv = [sys.executable, "-c", code, "--model", str(model_folder), "--port", "0", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        said = []
        while (line := process.stdout.readline()) and "http://" not in line:
            said.append(line)
        assert "http://" in line, "".join(said)
        url = "http://" + line.split("http://", 1)[1].split("/", 1)[0]
        pixels = np.zeros((28, 28))
        pixels[4:24, 12:16] = 1.0  # a stroke: a "1"
        request = urllib.request.Request(
            f"{url}/api/predict",
            data=json.dumps({"pixels": pixels.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["digit"] in range(10)
        maps = Path(f"/proc/{process.pid}/maps").read_text(encoding="utf-8", errors="replace")
        assert "onnxruntime" in maps
        assert "tensorflow" not in maps  # no TensorFlow library loaded
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C: the server stops and Python exits
        _, err = process.communicate(timeout=30)
    assert "tensorflow imported: False False" in err, err
