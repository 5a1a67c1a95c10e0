"""digits.model: architecture, optimizers, training and byte-stable saving, on tiny data."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.pipeline import COMMITTED_PARAMS, tiny_train_params, trained_model

from digits.keras_archive import normalize_keras_archive
from digits.model import (
    HISTORY_COLUMNS,
    Network,
    build_model,
    build_optimizer,
    load_model,
    predict_probabilities,
    save_model,
)
from digits.params import TrainParams


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, synthetic_data: dict) -> tuple:
    """(model, path) of a one-epoch model saved with save_model (optimizer state included)."""
    model, _ = trained_model(tiny_train_params(), synthetic_data)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(model, path)
    return model, path


def test_build_model_is_the_notebook_mlp() -> None:
    model = build_model(Network(dropout_rate=0.3))  # the defaults, no params file needed

    assert [type(layer).__name__ for layer in model.layers] == [
        "Flatten",
        *["Dense", "Dropout"] * 2,
        "Dense",
    ]
    assert model.input_shape == (None, 28, 28)
    assert model.layers[0].output.shape == (None, 784)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [128, 64, 10]
    assert [layer.get_config()["activation"] for layer in dense] == ["relu", "relu", "softmax"]
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.rate for layer in dropouts] == [0.3, 0.3]
    assert model.output_shape == (None, 10)
    # Weights and biases: 784*128 + 128 + 128*64 + 64 + 64*10 + 10.
    assert model.count_params() == 109_386


def test_the_committed_params_build_the_default_network() -> None:
    # One notebook network: params.yaml's train section and Network's defaults must agree.
    assert Network.from_params(TrainParams(**COMMITTED_PARAMS["train"])) == Network()


def test_build_model_follows_hidden_units_and_activation() -> None:
    model = build_model(Network(hidden_units=(7, 5, 3), activation="tanh"))

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [7, 5, 3, 10]
    assert [layer.get_config()["activation"] for layer in dense] == [*["tanh"] * 3, "softmax"]
    assert model.count_params() == (784 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3) + (3 * 10 + 10)


@pytest.mark.parametrize(
    ("optimizer", "momentum", "expected_class"),
    [
        ("adam", 0.0, keras.optimizers.Adam),
        ("sgd", 0.9, keras.optimizers.SGD),
        ("sgd", 0.0, keras.optimizers.SGD),
        ("rmsprop", 0.5, keras.optimizers.RMSprop),
    ],
)
def test_build_optimizer_makes_the_named_optimizer_with_its_settings(
    optimizer: str, momentum: float, expected_class: type
) -> None:
    params = tiny_train_params(optimizer=optimizer, momentum=momentum, learning_rate=0.05)

    result = build_optimizer(params)

    assert type(result) is expected_class
    assert float(result.learning_rate) == pytest.approx(0.05, rel=1e-6)  # stored as float32
    if optimizer != "adam":
        assert result.momentum == momentum


def test_build_optimizer_rejects_an_unknown_name() -> None:
    params = tiny_train_params().model_copy(update={"optimizer": "adagrad"})  # bypasses validation

    with pytest.raises(ValueError, match="adagrad"):
        build_optimizer(params)


def test_train_model_returns_one_history_row_per_epoch(synthetic_data: dict) -> None:
    _, history = trained_model(tiny_train_params(epochs=1), synthetic_data)

    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1]
    assert np.isfinite(history[HISTORY_COLUMNS[1:]].to_numpy()).all()


def test_train_model_learns_the_synthetic_digits(synthetic_data: dict) -> None:
    model, history = trained_model(tiny_train_params(epochs=5), synthetic_data)

    assert history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    # Chance is 0.1; the bright block gives the digit away.
    assert history["accuracy"].iloc[-1] > 0.8
    assert history["val_accuracy"].iloc[-1] > 0.8
    images, labels = synthetic_data["test"]
    probabilities = predict_probabilities(model, images)
    assert probabilities.shape == (len(images), 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean() > 0.8


def test_save_then_load_gives_identical_predictions(saved: tuple, synthetic_data: dict) -> None:
    model, path = saved
    images, _ = synthetic_data["test"]

    expected = predict_probabilities(model, images)

    loaded = load_model(path)

    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert np.array_equal(predict_probabilities(loaded, images), expected)
    # Also readable by plain Keras, as anyone downstream would load it.
    assert np.array_equal(predict_probabilities(keras.saving.load_model(path), images), expected)


def test_saved_file_is_a_zip_without_dates_or_memory_addresses(saved: tuple) -> None:
    _, path = saved

    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        entries = archive.infolist()
        names = [entry.filename for entry in entries]
        metadata = json.loads(archive.read("metadata.json"))
        config = archive.read("config.json").decode()

    assert names == sorted(names)
    assert {"config.json", "metadata.json", "model.weights.h5"} <= set(names)
    assert "date_saved" not in metadata
    assert all(entry.date_time == (1980, 1, 1, 0, 0, 0) for entry in entries)
    # Keras writes Python's id() of shared objects (the dtype policy): a different memory
    # address in every process. save_model renumbers them 1, 2, ...
    shared_ids = {int(value) for value in _shared_object_ids(json.loads(config))}
    assert shared_ids
    assert shared_ids <= set(range(1, len(shared_ids) + 1))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def _shared_object_ids(config: object) -> list[int]:
    if isinstance(config, dict):
        found = [config["shared_object_id"]] if "shared_object_id" in config else []
        return found + [i for value in config.values() for i in _shared_object_ids(value)]
    if isinstance(config, list):
        return [i for value in config for i in _shared_object_ids(value)]
    return []


def test_normalize_keras_archive_is_idempotent(saved: tuple, tmp_path: Path) -> None:
    model, path = saved
    raw_path = tmp_path / "raw.keras"
    model.save(raw_path)  # plain Keras: dated entries, date_saved, memory addresses
    raw = raw_path.read_bytes()

    once = normalize_keras_archive(raw)

    assert once != raw
    assert normalize_keras_archive(once) == once
    assert once == path.read_bytes()  # what save_model wrote for the same model


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(
    synthetic_data: dict, tmp_path: Path
) -> None:
    paths = {name: tmp_path / f"{name}.keras" for name in ("first", "again", "other")}
    seeds = {"first": 7, "again": 7, "other": 8}
    models = []  # kept alive, so no two models can share a memory address
    for name, path in paths.items():
        model, _ = trained_model(tiny_train_params(seed=seeds[name], epochs=2), synthetic_data)
        save_model(model, path)
        models.append(model)

    assert paths["first"].read_bytes() == paths["again"].read_bytes()
    assert paths["first"].read_bytes() != paths["other"].read_bytes()
