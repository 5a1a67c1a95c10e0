"""digits/onnx_export.py and the export stage: ONNX Runtime gives Keras' answers, the bytes repeat.

Keras is the reference: every network build_model makes (the MLP, the CNN with batch norm and
augmentation, the CNN without batch norm) runs through both, on the synthetic digits and on
noise, with batch norm's statistics moved away from their initial (0, 1) so that they matter.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import onnxruntime
import pytest
from helpers.pipeline import PROJECT

from digits.model import Augmentation, Network, build_model, save_model
from digits.onnx_export import INPUT_NAME, UnsupportedLayerError, build_onnx_model, onnx_bytes
from stages import export
from stages._cli import run

NETWORKS = {
    "mlp": Network(hidden_units=(32, 16)),
    "cnn-batch-norm-augmented": Network(
        architecture="cnn",
        conv_filters=(4, 8),
        convs_per_block=(1, 2),
        hidden_units=(16,),
        batch_norm=True,
        augmentation=Augmentation(),
    ),
    "cnn-gelu-no-batch-norm": Network(
        architecture="cnn", conv_filters=(4, 6, 8), batch_norm=False, activation="gelu"
    ),
    "mlp-selu": Network(hidden_units=(16,), activation="selu"),
    "cnn-elu": Network(architecture="cnn", conv_filters=(3,), batch_norm=True, activation="elu"),
}
TOLERANCE = 1e-5  # the largest difference allowed between the two probabilities


def built(network: Network, seed: int = 0) -> keras.Model:
    """The network with its initial weights and batch norm statistics far from (0, 1)."""
    keras.utils.set_random_seed(seed)
    model = build_model(network)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, channels).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.3, 3, channels).astype(np.float32))
            layer.gamma.assign(rng.normal(1, 0.3, channels).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, channels).astype(np.float32))
    return model


def onnx_probabilities(data: bytes, images: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images})[0]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_onnx_runtime_gives_the_keras_models_answers(name: str, synthetic_data: dict) -> None:
    model = built(NETWORKS[name])
    digits = synthetic_data["test"][0]
    noise = np.random.default_rng(1).random((50, 28, 28), dtype=np.float32)
    images = np.concatenate([digits, noise])  # (150, 28, 28) float32 in [0, 1]

    expected = model(images, training=False).numpy()
    got = onnx_probabilities(onnx_bytes(model), images)

    assert got.shape == expected.shape == (150, 10)
    assert got.argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()
    assert np.abs(got - expected).max() <= TOLERANCE
    # The check has teeth: the model's answers differ from image to image.
    assert len(set(expected.argmax(axis=1).tolist())) > 1 or np.ptp(expected[:, 0]) > 1e-3


def test_the_graph_leaves_out_the_training_only_layers() -> None:
    graph = build_onnx_model(built(NETWORKS["cnn-batch-norm-augmented"])).graph
    ops = [node.op_type for node in graph.node]

    assert "Dropout" not in ops
    assert not any(node.name.startswith(("random_", "augmentation")) for node in graph.node)
    assert ops.count("Conv") == 3
    assert ops.count("BatchNormalization") == 3
    assert ops.count("MaxPool") == 2
    assert [value.name for value in graph.input] == [INPUT_NAME]


def test_the_same_model_gives_the_same_bytes_in_another_process(tmp_path: Path) -> None:
    model_path = tmp_path / "model.keras"
    save_model(built(NETWORKS["cnn-batch-norm-augmented"]), model_path)
    here, there = tmp_path / "here.onnx", tmp_path / "there.onnx"

    assert run(export.main, ["--model", str(model_path), "--onnx", str(here)]) == 0
    subprocess.run(
        [sys.executable, "-m", "stages.export", "--model", model_path, "--onnx", there],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )

    first, second = here.read_bytes(), there.read_bytes()
    assert hashlib.md5(first).hexdigest() == hashlib.md5(second).hexdigest()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "here.onnx",
        "model.keras",
        "there.onnx",
    ]  # no temp file left behind


def test_different_weights_give_different_bytes() -> None:
    network = NETWORKS["mlp"]
    assert onnx_bytes(built(network, seed=0)) != onnx_bytes(built(network, seed=1))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (keras.layers.AveragePooling2D(2, name="smooth"), "layer smooth: AveragePooling2D has no"),
        (
            keras.layers.Conv2D(4, 3, strides=2, padding="same", name="strided"),
            "layer strided: strides=(2, 2) is not supported",
        ),
        (
            keras.layers.Conv2D(4, 3, name="unpadded"),
            "layer unpadded: padding='valid' is not supported",
        ),
        (
            keras.layers.Activation("softplus", name="soft"),
            "layer soft: activation 'softplus' has no ONNX translation",
        ),
    ],
)
def test_a_layer_it_cannot_translate_is_named(layer: keras.layers.Layer, message: str) -> None:
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    with pytest.raises(UnsupportedLayerError, match=re.escape(message)):
        build_onnx_model(model)


def test_the_stage_without_a_model_says_which_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such" / "model.keras"
    out = tmp_path / "out" / "model.onnx"

    assert run(export.main, ["--model", str(missing), "--onnx", str(out)]) == 1

    assert str(missing) in capsys.readouterr().err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
