"""Build, train, save and load the Keras classifier.

Only train and evaluate import this module (and TensorFlow with it), after
digits.determinism.pin_cpu_kernels(); the data stages never do, so they start in well under a
second. (The recogniser app's digits/app/predict.py loads models through it too.)
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import pandas as pd
from keras import layers
from keras.optimizers.schedules import LearningRateSchedule

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from digits.errors import DigitsError
from digits.files import WriteError, atomic_open, describe_os_error
from digits.keras_archive import normalize_keras_archive
from digits.params import TrainParams

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random shifts, rotations and zooms applied to training images."""

    max_shift: float = 0.1  # fraction of the image's width / height
    max_rotation_degrees: float = 10
    max_zoom: float = 0.1  # 0.1 zooms between 90% and 110%


@dataclass(frozen=True)
class Network:
    """What build_model builds. The defaults are the notebook's network: Flatten 784 -> Dense
    128 ReLU -> Dropout -> Dense 64 ReLU -> Dropout -> Dense 10 softmax. The train stage makes
    one from its params (`Network.from_params`); tests and tools can make one directly."""

    architecture: Literal["mlp", "cnn"] = "mlp"
    hidden_units: tuple[int, ...] = (128, 64)  # mlp: hidden Dense layers; cnn: after the convs
    conv_filters: tuple[int, ...] = (32, 64)  # cnn: one block of 3x3 convolutions per entry
    convs_per_block: int | tuple[int, ...] = 1  # cnn: for every block, or one count per block
    batch_norm: bool = False  # cnn: batch normalisation after every convolution
    activation: str = "relu"
    dropout_rate: float = 0.2
    augmentation: Augmentation | None = None  # None: no augmentation layers
    seed: int = 42  # the augmentation layers are seeded seed + 1, + 2 and + 3

    @classmethod
    def from_params(cls, params: TrainParams) -> Network:
        augmentation = params.augmentation
        return cls(
            architecture=params.architecture,
            hidden_units=tuple(params.hidden_units),
            conv_filters=tuple(params.conv_filters),
            convs_per_block=params.convs_per_block
            if isinstance(params.convs_per_block, int)
            else tuple(params.convs_per_block),
            batch_norm=params.batch_norm,
            activation=params.activation,
            dropout_rate=params.dropout_rate,
            augmentation=Augmentation(
                max_shift=augmentation.max_shift,
                max_rotation_degrees=augmentation.max_rotation_degrees,
                max_zoom=augmentation.max_zoom,
            )
            if augmentation.enabled
            else None,
            seed=params.seed,
        )


# The intra-op thread count convolutional networks train with, on every machine. TensorFlow's
# reductions (batch norm's moments, a convolution's weight gradient) split their work by it, so
# the weights differ between thread counts (measured with the app's recipe: 2, 3, 4 and 8 threads
# each train other bits); TensorFlow's default of a thread per core would make the trained bits
# depend on the machine's cores. Two is this project's reference machine's count.
CNN_THREADS = 2


def tune_tensorflow_for(network: Network) -> None:
    """For the MLP, one thread per op and no graph optimiser; for the CNN, CNN_THREADS threads.

    The MLP's matrix products are too small to gain from a second core: handing each op
    across threads costs more than it saves, and Grappler's rewrites of its graph cost more
    (at the first epoch's tracing, and per step) than they save (docs/speed.md, "Where training time
    goes"). Its second inter-op thread lets tf.data slice the next batch while a step runs.
    Convolutions gain from both, and their weights depend on the thread count, which is
    therefore fixed rather than one per core. A process that has already run TensorFlow ops
    (where the threads can no longer change) keeps its threads.
    """
    import tensorflow as tf

    intra_op = 1 if network.architecture == "mlp" else CNN_THREADS
    if network.architecture == "mlp":
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    with contextlib.suppress(RuntimeError):  # "cannot be modified after initialization"
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(2)


def build_augmentation(augmentation: Augmentation, seed: int) -> keras.Sequential:
    """Random shift, rotation and zoom of (N, 28, 28, 1) images; identity outside training.

    Each layer has its own seed derived from `seed`, so the same seed gives the same augmented
    batches (the determinism recipe covers these ops too).
    """
    fill = {"fill_mode": "constant", "fill_value": 0.0}  # MNIST background is black
    return keras.Sequential(
        [
            layers.RandomTranslation(
                augmentation.max_shift, augmentation.max_shift, seed=seed + 1, **fill
            ),
            layers.RandomRotation(augmentation.max_rotation_degrees / 360, seed=seed + 2, **fill),
            layers.RandomZoom(augmentation.max_zoom, seed=seed + 3, **fill),
        ],
        name="augmentation",
    )


def _dense_head(network: Network) -> list[layers.Layer]:
    """[Dense -> Dropout] per hidden_units entry, then the softmax over the ten classes."""
    head: list[layers.Layer] = []
    for number, units in enumerate(network.hidden_units, start=1):
        head += [
            layers.Dense(units, activation=network.activation, name=f"hidden_{number}"),
            layers.Dropout(network.dropout_rate, name=f"dropout_{number}"),
        ]
    return [*head, layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")]


# The weight of the past in batch norm's moving mean and variance, which inference uses. Keras'
# default, 0.99, keeps about 1/e of the initial (0, 1) statistics after 100 steps and 4% after
# 316: a short run (one epoch of a quarter of MNIST) then scores 0.10 on validation while its
# training loss is fine. 0.9 (PyTorch's momentum=0.1) forgets them within about 50 steps.
BATCH_NORM_MOMENTUM = 0.9


def _convolution_blocks(network: Network) -> list[layers.Layer]:
    """Per conv_filters entry: (3x3 conv -> [batch norm] -> activation) x its convs_per_block,
    then 2x2 max-pooling. (N, 28, 28, 1) -> (N, 28 / 2**blocks, ..., filters)."""
    blocks: list[layers.Layer] = []
    counts = network.convs_per_block
    if isinstance(counts, int):
        counts = (counts,) * len(network.conv_filters)
    for block, (filters, count) in enumerate(zip(network.conv_filters, counts, strict=True), 1):
        for conv in range(1, count + 1):
            name = f"block{block}_conv{conv}"
            blocks.append(
                layers.Conv2D(
                    filters, 3, padding="same", use_bias=not network.batch_norm, name=name
                )
            )
            if network.batch_norm:
                blocks.append(
                    layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_norm")
                )
            blocks.append(
                layers.Activation(network.activation, name=f"{name}_{network.activation}")
            )
        blocks.append(layers.MaxPooling2D(2, name=f"block{block}_pool"))
    return blocks


def _fused_batch_norm_call(layer: layers.BatchNormalization, inputs, training=None, mask=None):
    """BatchNormalization.call, in training on (N, H, W, C) images, with TensorFlow's fused
    kernel (FusedBatchNormV3): one op forward and one backward instead of Keras 3's moments and
    normalisation ops. Same normalisation and moving-statistics update as Keras' call, up to
    float rounding; anything else (inference, other ranks) is Keras' own call."""
    import tensorflow as tf

    if not (training and layer.trainable) or len(inputs.shape) != 4 or layer.axis not in (-1, 3):
        return type(layer).call(layer, inputs, training=training, mask=mask)
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, layer.gamma, layer.beta, epsilon=layer.epsilon, is_training=True
    )
    # The kernel returns the unbiased variance (n - 1); Keras' moving variance averages the
    # biased one.
    samples = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), variance.dtype)
    variance = variance * (samples - 1) / samples
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1 - momentum))
    return outputs


def use_fused_batch_norm(model: keras.Model) -> None:
    """Train the model's batch normalisation layers with the fused kernel
    (_fused_batch_norm_call). Only the training computation changes: the layers stay Keras'
    BatchNormalization, so the saved model loads anywhere Keras runs (the ONNX export, the app).
    What it saves is measured in docs/speed.md ("Batch norm, fused")."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.call = types.MethodType(_fused_batch_norm_call, layer)


def build_model(network: Network) -> keras.Model:
    """The network on (N, 28, 28) images in [0, 1].

    mlp, the notebook's: Flatten 784 -> [Dense -> Dropout] per hidden layer -> softmax.
    cnn: convolution blocks -> Flatten -> the same dense head.
    Augmentation, when there is one, comes first and only acts during training.
    Layers get explicit names: Keras' automatic ones (dense_3, ...) count models built earlier
    in the same process, and the names are saved in the .keras file.
    """
    front: list[layers.Layer] = []
    if network.architecture == "cnn" or network.augmentation:  # image layers want (N, 28, 28, 1)
        front.append(layers.Reshape((IMAGE_HEIGHT, IMAGE_WIDTH, 1), name="channels"))
    if network.augmentation:
        front.append(build_augmentation(network.augmentation, network.seed))
    body = _convolution_blocks(network) if network.architecture == "cnn" else []
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_HEIGHT, IMAGE_WIDTH), name="image"),
            *front,
            *body,
            layers.Flatten(name="flatten"),
            *_dense_head(network),
        ],
        name=network.architecture,
    )


# One-cycle (Smith & Topin, 2017) with the shape of PyTorch's OneCycleLR defaults (pct_start 0.3,
# div_factor 25): a linear warm-up over the first 30% of the steps from 1/25 of the learning
# rate, then cosine annealing to 0.
ONE_CYCLE_WARMUP = 0.3
ONE_CYCLE_START_DIVISOR = 25


def build_learning_rate(params: TrainParams, steps_per_epoch: int) -> float | LearningRateSchedule:
    """The learning rate, constant or decayed step by step over the whole run."""
    total_steps = params.epochs * steps_per_epoch
    if params.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, total_steps)
    if params.schedule == "one-cycle":  # up from 1/25 of the rate for 30% of the run, then cosine
        warmup_steps = round(ONE_CYCLE_WARMUP * total_steps)
        return keras.optimizers.schedules.CosineDecay(
            params.learning_rate / ONE_CYCLE_START_DIVISOR,
            total_steps - warmup_steps,
            warmup_target=params.learning_rate,
            warmup_steps=warmup_steps,
        )
    if params.schedule == "exponential":  # down to 1% of the initial rate at the last step
        return keras.optimizers.schedules.ExponentialDecay(params.learning_rate, total_steps, 0.01)
    return params.learning_rate


def build_optimizer(params: TrainParams, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    learning_rate = build_learning_rate(params, steps_per_epoch)
    if params.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=params.momentum)
    if params.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=params.momentum)
    raise ValueError(f"unknown optimizer {params.optimizer!r}; allowed: adam, sgd, rmsprop")


def compile_model(
    model: keras.Model, params: TrainParams, steps_per_epoch: int, steps_per_execution: int = 1
) -> None:
    """Compile for training (steps_per_epoch sizes the learning-rate schedule)."""
    model.compile(
        optimizer=build_optimizer(params, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def train_model(
    model: keras.Model,
    params: TrainParams,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> pd.DataFrame:
    """Compile and fit; return the per-epoch history (HISTORY_COLUMNS). `callbacks` run after
    every epoch too (the train stage's DVCLive logger).

    One call into TensorFlow per epoch (steps_per_execution = steps per epoch) instead of one per
    batch: the same weights bit for bit, in a fraction of the time on a small network.
    """
    images, labels = train
    steps_per_epoch = math.ceil(len(images) / params.batch_size)
    use_fused_batch_norm(model)
    compile_model(model, params, steps_per_epoch, steps_per_execution=steps_per_epoch)
    stopping = (
        [
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=params.early_stopping_patience,
                restore_best_weights=True,
            )
        ]
        if params.early_stopping_patience
        else []
    )
    history = model.fit(
        images,
        labels,
        epochs=params.epochs,
        batch_size=params.batch_size,
        validation_data=validation,
        validation_batch_size=max(params.batch_size, 1024),
        callbacks=[*stopping, *callbacks],
        verbose=verbose,
    )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return frame[HISTORY_COLUMNS]


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save as a standard .keras file whose bytes depend only on the model (no dates)."""
    # Keras saves only to a path ending in .keras. Its scratch folder is in the system's temp
    # directory, not beside `path`: a save killed halfway leaves nothing in the workspace.
    with tempfile.TemporaryDirectory(prefix="digits-model-") as scratch:
        raw = Path(scratch) / "model.keras"
        try:
            model.save(raw)
        except OSError as error:  # e.g. a full system temp directory: say which
            raise WriteError(
                f"cannot save the model in {scratch}: {describe_os_error(error)}"
            ) from error
        normalized = normalize_keras_archive(raw.read_bytes())
    with atomic_open(path, "wb") as file:
        file.write(normalized)


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Load with Keras' safe_mode on (no arbitrary code from the file)."""
    if not Path(path).is_file():
        raise DigitsError(
            f"model file {path} does not exist: make it with `dvc repro` or fetch it with "
            "`dvc pull`"
        )
    return keras.saving.load_model(path, safe_mode=True)


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 1000
) -> np.ndarray:
    """(N, 28, 28) float32 -> (N, 10) float32 class probabilities."""
    return model.predict(images, batch_size=batch_size, verbose=0)
