"""digits.model options: mlp and cnn networks, augmentation, learning-rate schedules and early
stopping, each built from TrainParams and exercised on tiny synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.pipeline import tiny_train_params, trained_model

from digits.determinism import seed_everything
from digits.model import (
    HISTORY_COLUMNS,
    Augmentation,
    Network,
    build_augmentation,
    build_learning_rate,
    build_model,
    build_optimizer,
    compile_model,
    load_model,
    predict_probabilities,
    save_model,
    train_model,
    use_fused_batch_norm,
)
from digits.params import TrainParams

AUGMENTED = {"enabled": True, "max_shift": 0.1, "max_rotation_degrees": 10, "max_zoom": 0.1}
STILL = {"enabled": True, "max_shift": 0, "max_rotation_degrees": 0, "max_zoom": 0}


def augmentation_params(seed: int = 42, **amounts: float) -> TrainParams:
    """Augmentation enabled with the given amounts (the others 0)."""
    return tiny_train_params(seed=seed, augmentation={**STILL, **amounts})


def augmentation_of(params: TrainParams) -> tuple[Augmentation, int]:
    """build_augmentation's arguments, as build_model passes them for these params."""
    network = Network.from_params(params)
    assert network.augmentation is not None, "these params have augmentation off"
    return network.augmentation, network.seed


def fresh_model(params: TrainParams) -> keras.Model:
    """A model built as stages.train builds it: in a clean session, after seeding."""
    keras.backend.clear_session()
    seed_everything(params.seed)
    return build_model(Network.from_params(params))


# --- architectures --------------------------------------------------------------------------------

MODELS = {
    "mlp": {"architecture": "mlp"},
    "mlp-augmented": {"architecture": "mlp", "augmentation": AUGMENTED},
    "cnn-batch-norm": {"architecture": "cnn", "batch_norm": True, "convs_per_block": 1},
    "cnn": {"architecture": "cnn", "batch_norm": False, "convs_per_block": 1},
    "cnn-2-convs-batch-norm": {"architecture": "cnn", "batch_norm": True, "convs_per_block": 2},
    "cnn-2-convs": {"architecture": "cnn", "batch_norm": False, "convs_per_block": 2},
    "cnn-augmented": {"architecture": "cnn", "augmentation": AUGMENTED},
    "cnn-1-then-2-convs": {"architecture": "cnn", "convs_per_block": [1, 2]},
}


def block_convs(params: TrainParams) -> list[int]:
    """How many convolutions each block has, by hand."""
    counts = params.convs_per_block
    return counts if isinstance(counts, list) else [counts] * len(params.conv_filters)


def expected_layers(params: TrainParams) -> list[str]:
    front = []
    if params.architecture == "cnn" or params.augmentation.enabled:
        front.append("Reshape")
    if params.augmentation.enabled:
        front.append("Sequential")
    body = []
    if params.architecture == "cnn":
        conv = ["Conv2D", *(["BatchNormalization"] if params.batch_norm else []), "Activation"]
        body = [name for count in block_convs(params) for name in [*conv * count, "MaxPooling2D"]]
    head = ["Dense", "Dropout"] * len(params.hidden_units) + ["Dense"]
    return [*front, *body, "Flatten", *head]


def expected_parameters(params: TrainParams) -> int:
    """Weights, biases and batch-norm statistics (4 per channel), counted by hand."""
    total, size, channels = 0, 28, 1
    if params.architecture == "cnn":
        for filters, count in zip(params.conv_filters, block_convs(params), strict=True):
            for _ in range(count):
                total += 3 * 3 * channels * filters  # kernel
                total += 4 * filters if params.batch_norm else filters  # norm or bias
                channels = filters
            size //= 2  # 2x2 max-pooling
    inputs = size * size * channels
    for units in [*params.hidden_units, 10]:
        total += inputs * units + units
        inputs = units
    return total


@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_build_model_follows_the_params(options: dict) -> None:
    params = tiny_train_params(**options)

    model = fresh_model(params)

    assert [type(layer).__name__ for layer in model.layers] == expected_layers(params)
    assert model.name == params.architecture
    assert model.input_shape == (None, 28, 28)
    assert model.output_shape == (None, 10)
    assert model.count_params() == expected_parameters(params)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    expected_filters = [
        f
        for f, count in zip(params.conv_filters, block_convs(params), strict=True)
        for _ in range(count)
    ]
    assert [layer.filters for layer in convolutions] == (
        expected_filters if params.architecture == "cnn" else []
    )
    assert all(layer.use_bias is not params.batch_norm for layer in convolutions)
    assert all(layer.kernel_size == (3, 3) for layer in convolutions)


@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_each_model_trains_saves_and_reloads(
    options: dict, synthetic_data: dict, tmp_path: Path
) -> None:
    params = tiny_train_params(**options)
    images, _ = synthetic_data["test"]

    model, history = trained_model(params, synthetic_data)
    save_model(model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")

    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1]
    assert np.isfinite(history[HISTORY_COLUMNS[1:]].to_numpy()).all()
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    expected = predict_probabilities(model, images)
    assert np.isfinite(expected).all()
    assert np.array_equal(predict_probabilities(loaded, images), expected)


def test_augmentation_acts_in_training_only(synthetic_data: dict) -> None:
    """Same seed, same initial weights; only the augmentation amounts differ."""
    initial, final = [], []
    for amounts in ({}, AUGMENTED):
        params = augmentation_params(**amounts)
        model = fresh_model(params)
        initial.append(model.get_weights())
        train_model(model, params, synthetic_data["train"], synthetic_data["validation"], verbose=0)
        final.append(model.get_weights())

    assert all(np.array_equal(a, b) for a, b in zip(*initial, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(*final, strict=True))


# --- augmentation ---------------------------------------------------------------------------------

ROWS, COLUMNS = np.mgrid[0:28, 0:28].astype(np.float32)
CENTRE = 13.5  # the centre of a 28-pixel axis, in pixel-index coordinates
BATCH = 64


def batch_of(image: np.ndarray) -> np.ndarray:
    """(BATCH, 28, 28, 1) copies of one (28, 28) image."""
    return np.repeat(image[None, :, :, None], BATCH, axis=0).astype(np.float32)


def centred_blob() -> np.ndarray:
    return np.exp(-((ROWS - CENTRE) ** 2 + (COLUMNS - CENTRE) ** 2) / (2 * 2.5**2))


def horizontal_bar() -> np.ndarray:
    bar = np.zeros((28, 28), np.float32)
    bar[13:15, 4:24] = 1  # 2 px thick, 20 px long, centred
    return bar


def augment(params: TrainParams, images: np.ndarray, training: bool = True) -> np.ndarray:
    """build_augmentation in a clean, seeded session, applied once: (N, 28, 28, 1) -> same."""
    keras.backend.clear_session()
    seed_everything(params.seed)
    return np.asarray(build_augmentation(*augmentation_of(params))(images, training=training))


def centres(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image centre of mass (row, column) of (N, 28, 28, 1) images."""
    images = images[..., 0]
    mass = images.sum(axis=(1, 2))
    return (images * ROWS).sum(axis=(1, 2)) / mass, (images * COLUMNS).sum(axis=(1, 2)) / mass


def orientations(images: np.ndarray) -> np.ndarray:
    """Per-image angle (degrees) of the main axis, from the second moments."""
    rows, columns = centres(images)
    images = images[..., 0]
    mass = images.sum(axis=(1, 2))
    dr = ROWS[None] - rows[:, None, None]
    dc = COLUMNS[None] - columns[:, None, None]
    mu_rr = (images * dr * dr).sum(axis=(1, 2)) / mass
    mu_cc = (images * dc * dc).sum(axis=(1, 2)) / mass
    mu_rc = (images * dr * dc).sum(axis=(1, 2)) / mass
    return np.degrees(0.5 * np.arctan2(2 * mu_rc, mu_cc - mu_rr))


@pytest.fixture(scope="module")
def digit_batch(synthetic_data: dict) -> np.ndarray:
    return synthetic_data["train"][0][:BATCH, :, :, None].copy()


def test_augmentation_is_reproducible_from_the_seed(digit_batch: np.ndarray) -> None:
    params = augmentation_params(**AUGMENTED)

    first = augment(params, digit_batch)
    again = augment(params, digit_batch)
    other_seed = augment(augmentation_params(seed=43, **AUGMENTED), digit_batch)

    assert first.shape == digit_batch.shape
    assert not np.array_equal(first, digit_batch)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed)


def test_augmentation_draws_a_new_transform_per_image_and_per_call(
    digit_batch: np.ndarray,
) -> None:
    same = np.repeat(digit_batch[:1], BATCH, axis=0)
    keras.backend.clear_session()
    layer = build_augmentation(*augmentation_of(augmentation_params(**AUGMENTED)))

    first = np.asarray(layer(same, training=True))
    second = np.asarray(layer(same, training=True))

    assert len({image.tobytes() for image in first}) == BATCH
    assert not np.array_equal(first, second)


def test_augmentation_with_zero_amounts_is_the_identity(digit_batch: np.ndarray) -> None:
    result = augment(augmentation_params(), digit_batch)
    np.testing.assert_allclose(result, digit_batch, rtol=0, atol=1e-6)


def test_augmentation_outside_training_is_the_identity(digit_batch: np.ndarray) -> None:
    result = augment(augmentation_params(**AUGMENTED), digit_batch, training=False)
    assert np.array_equal(result, digit_batch)


def test_shift_moves_the_centre_of_mass_by_at_most_max_shift() -> None:
    images = batch_of(centred_blob())

    rows, columns = centres(augment(augmentation_params(max_shift=0.1), images))

    moved = np.maximum(np.abs(rows - CENTRE), np.abs(columns - CENTRE))
    assert moved.max() <= 0.1 * 28 + 0.5, moved.max()
    assert moved.max() > 0.5


def test_zoom_scales_the_ink_within_max_zoom_about_the_centre() -> None:
    blob = centred_blob()

    zoomed = augment(augmentation_params(max_zoom=0.1), batch_of(blob))

    ratio = zoomed.sum(axis=(1, 2, 3)) / blob.sum()  # area scales with zoom squared
    assert ratio.min() >= 0.8, ratio.min()
    assert ratio.max() <= 1.25, ratio.max()
    assert ratio.min() < 0.95  # some zoomed out
    assert ratio.max() > 1.05  # and some zoomed in
    rows, columns = centres(zoomed)
    assert np.abs(rows - CENTRE).max() <= 1
    assert np.abs(columns - CENTRE).max() <= 1


def test_rotation_turns_a_bar_by_at_most_max_rotation() -> None:
    bar = horizontal_bar()
    assert orientations(batch_of(bar)) == pytest.approx(0, abs=1e-6)

    angles = orientations(augment(augmentation_params(max_rotation_degrees=10), batch_of(bar)))

    assert np.abs(angles).max() <= 10 + 1, angles
    assert np.abs(angles).max() > 1
    assert angles.min() < -1  # both ways
    assert angles.max() > 1


# --- learning-rate schedules ----------------------------------------------------------------------

STEPS_PER_EPOCH = 10


def test_constant_learning_rate_is_the_float() -> None:
    params = tiny_train_params(schedule="constant", learning_rate=0.02, epochs=5)

    learning_rate = build_learning_rate(params, STEPS_PER_EPOCH)

    assert type(learning_rate) is float
    assert learning_rate == 0.02
    assert float(build_optimizer(params, STEPS_PER_EPOCH).learning_rate) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("schedule", "schedule_class", "halfway", "end"),
    [
        ("cosine", keras.optimizers.schedules.CosineDecay, 0.5, 0.0),
        ("exponential", keras.optimizers.schedules.ExponentialDecay, 0.1, 0.01),
    ],
)
def test_decaying_schedule_runs_over_the_whole_training(
    schedule: str, schedule_class: type, halfway: float, end: float
) -> None:
    params = tiny_train_params(schedule=schedule, learning_rate=0.02, epochs=5)
    total = params.epochs * STEPS_PER_EPOCH

    learning_rate = build_learning_rate(params, STEPS_PER_EPOCH)

    assert isinstance(learning_rate, schedule_class)
    values = np.array([float(learning_rate(step)) for step in range(total + 1)])
    assert values[0] == pytest.approx(0.02, rel=1e-6)
    assert values[total // 2] == pytest.approx(halfway * 0.02, rel=1e-5)
    assert values[total] == pytest.approx(end * 0.02, rel=1e-5, abs=1e-9)
    assert (np.diff(values) < 0).all()

    optimizer = build_optimizer(params, STEPS_PER_EPOCH)

    config = optimizer.get_config()["learning_rate"]
    assert config["class_name"] == schedule_class.__name__
    assert config["config"] == learning_rate.get_config()
    assert float(optimizer.learning_rate) == pytest.approx(0.02, rel=1e-6)  # at step 0


def test_one_cycle_warms_up_for_30_percent_of_the_run_then_anneals_to_zero() -> None:
    params = tiny_train_params(schedule="one-cycle", learning_rate=0.02, epochs=10)
    total = params.epochs * STEPS_PER_EPOCH
    peak = round(0.3 * total)

    learning_rate = build_learning_rate(params, STEPS_PER_EPOCH)

    values = np.array([float(learning_rate(step)) for step in range(total + 1)])
    assert values[0] == pytest.approx(0.02 / 25, rel=1e-6)
    assert values.argmax() == peak
    assert values[peak] == pytest.approx(0.02, rel=1e-6)
    assert (np.diff(values[: peak + 1]) > 0).all()
    assert (np.diff(values[peak:]) < 0).all()
    assert values[total] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("schedule", "end"), [("cosine", 0.0), ("exponential", 0.01), ("one-cycle", 0.0)]
)
def test_train_model_sizes_the_schedule_to_the_run(
    schedule: str, end: float, synthetic_data: dict
) -> None:
    params = tiny_train_params(schedule=schedule, epochs=2)
    images, _ = synthetic_data["train"]

    model, history = trained_model(params, synthetic_data)

    assert len(history) == 2
    steps = 2 * math.ceil(len(images) / params.batch_size)
    assert int(model.optimizer.iterations) == steps
    # The schedule reached its end exactly when training did.
    assert float(model.optimizer.learning_rate) == pytest.approx(end * 0.01, rel=1e-5, abs=1e-9)


# --- early stopping -------------------------------------------------------------------------------

# Adam at 0.003 on the synthetic digits, validated on labels of which every 4th is wrong: the
# validation loss falls for an epoch or two, then rises as the model grows sure of the true
# digits (measured: 1.66, 1.32, 1.37, 1.56, ...). Deterministic: same seed, same weights.
OVERFITTING = {"learning_rate": 0.003, "epochs": 8}


@pytest.fixture(scope="module")
def noisy_validation(synthetic_data: dict) -> tuple[np.ndarray, np.ndarray]:
    images, labels = synthetic_data["validation"]
    labels = labels.copy()
    labels[::4] = np.roll(labels[::4], 1, axis=1)  # every 4th digit labelled as the next one
    return images, labels


def validation_loss(model: keras.Model, validation: tuple) -> float:
    loss, _ = model.evaluate(*validation, batch_size=1024, verbose=0)
    return loss


def test_early_stopping_stops_and_keeps_the_best_weights(
    synthetic_data: dict, noisy_validation: tuple
) -> None:
    params = tiny_train_params(**OVERFITTING, early_stopping_patience=1)

    model, history = trained_model(params, synthetic_data, noisy_validation)

    assert len(history) < params.epochs
    best = int(history["val_loss"].idxmin())
    assert best == len(history) - 2  # one epoch of patience after the best
    assert history["val_loss"].iloc[-1] > history["val_loss"].iloc[best]
    assert validation_loss(model, noisy_validation) == pytest.approx(
        history["val_loss"].min(), abs=1e-5
    )
    # The very weights of a run that ends at the best epoch.
    reference, _ = trained_model(
        tiny_train_params(**{**OVERFITTING, "epochs": best + 1}), synthetic_data, noisy_validation
    )
    for kept, expected in zip(model.get_weights(), reference.get_weights(), strict=True):
        assert np.array_equal(kept, expected)


def test_early_stopping_off_runs_every_epoch_and_keeps_the_last_weights(
    synthetic_data: dict, noisy_validation: tuple
) -> None:
    params = tiny_train_params(**{**OVERFITTING, "epochs": 4}, early_stopping_patience=0)

    model, history = trained_model(params, synthetic_data, noisy_validation)

    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["val_loss"].iloc[-1] > history["val_loss"].min()  # it did get worse
    assert validation_loss(model, noisy_validation) == pytest.approx(
        history["val_loss"].iloc[-1], abs=1e-5
    )


def test_patience_longer_than_the_run_still_keeps_the_best_weights(
    synthetic_data: dict, noisy_validation: tuple
) -> None:
    params = tiny_train_params(**{**OVERFITTING, "epochs": 4}, early_stopping_patience=10)

    model, history = trained_model(params, synthetic_data, noisy_validation)

    assert len(history) == 4
    assert history["val_loss"].iloc[-1] > history["val_loss"].min()
    assert validation_loss(model, noisy_validation) == pytest.approx(
        history["val_loss"].min(), abs=1e-5
    )


def test_batch_norm_statistics_follow_a_short_run(synthetic_data: dict) -> None:
    """Inference normalises with the moving statistics: after 100 steps they must be the data's,
    not still mostly the initial variance 1 (Keras' default momentum keeps 37 % of it)."""
    params = tiny_train_params(
        architecture="cnn", batch_norm=True, batch_size=12, epochs=4, learning_rate=0.001
    )
    images, _ = synthetic_data["train"]  # 300 images: 25 steps per epoch

    model, _ = trained_model(params, synthetic_data)

    norm = next(
        layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    )
    index = model.layers.index(norm)
    inputs = keras.Sequential(model.layers[:index])(images).numpy()
    actual = inputs.var(axis=(0, 1, 2))
    moving = keras.ops.convert_to_numpy(norm.moving_variance)
    assert np.all(moving < 3 * actual), (moving, actual)
    assert np.all(moving > actual / 3), (moving, actual)


def test_label_smoothing_sets_the_targets_training_aims_for() -> None:
    """With label_smoothing s the loss is least for predictions of 1 - s + s/10 for the digit
    and s/10 for each other one; with 0, for the one-hot labels."""
    onehot = np.eye(10, dtype="float32")

    def aimed(smoothing: float) -> np.ndarray:
        return onehot * (1 - smoothing) + smoothing / 10

    for smoothing, other in ((0.0, 0.1), (0.1, 0.0)):
        model = build_model(Network())
        compile_model(model, tiny_train_params(label_smoothing=smoothing), steps_per_epoch=1)
        assert model.loss(onehot, aimed(smoothing)) < model.loss(onehot, aimed(other)), smoothing


def test_training_runs_batch_norm_as_one_fused_op(synthetic_data: dict) -> None:
    """train_model trains batch norm with TensorFlow's fused kernel (docs/speed.md), and the
    trained model still holds Keras' own BatchNormalization layers."""
    import tensorflow as tf

    params = tiny_train_params(architecture="cnn", batch_norm=True, epochs=1)
    model, _ = trained_model(params, synthetic_data)
    images, _ = synthetic_data["train"]

    graph = (
        tf.function(lambda batch: model(batch, training=True))
        .get_concrete_function(tf.TensorSpec((None, *images.shape[1:]), tf.float32))
        .graph
    )
    kinds = {operation.type for operation in graph.get_operations()}
    assert "FusedBatchNormV3" in kinds
    assert {layer["class_name"] for layer in model.get_config()["layers"]} >= {"BatchNormalization"}


def test_fused_batch_norm_normalises_and_updates_statistics_as_keras_does() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(3.0, 2.0, size=(16, 7, 7, 5)).astype("float32")
    plain, fused = (keras.layers.BatchNormalization(momentum=0.9) for _ in range(2))
    for norm in (plain, fused):
        norm.build(images.shape)
    use_fused_batch_norm(keras.Sequential([keras.Input(images.shape[1:]), fused]))

    expected, actual = plain(images, training=True), fused(images, training=True)

    np.testing.assert_allclose(actual, expected, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(getattr(fused, name)),
            keras.ops.convert_to_numpy(getattr(plain, name)),
            rtol=1e-5,
        )
    np.testing.assert_allclose(fused(images), plain(images), atol=1e-5)  # inference: Keras' call
