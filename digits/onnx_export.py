"""A trained Keras model as an ONNX graph, built from its layers and weights.

ONNX Runtime then runs the model without TensorFlow (digits/app/predict.py). The graph is
written here with the `onnx` package rather than by a converter: Keras' `model.export(...,
format="onnx")` needs tf2onnx on the TensorFlow backend, which tracks TensorFlow releases
behind, and the networks build_model makes use a handful of layers, each a one-line ONNX
operator. Nothing in the graph depends on the clock, the machine or the process, so the
same .keras file gives the same bytes.

Layout: Keras keeps images as (N, H, W, C), ONNX's Conv and MaxPool want (N, C, H, W). The
single-channel input needs only a reshape to (N, 1, 28, 28); before Flatten the graph
transposes back to (N, H, W, C), so Flatten's order, and with it the Dense weights, is Keras'.
Dropout and the augmentation layers act only in training, so they are left out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from digits.errors import DigitsError

if TYPE_CHECKING:
    import keras

OPSET = 17  # ONNX Runtime has run it since 1.13 (2022)
IR_VERSION = 8  # the IR version of opset 17
INPUT_NAME = "image"  # (N, 28, 28) float32 in [0, 1], as the Keras model
OUTPUT_NAME = "probabilities"  # (N, 10) float32
PRODUCER = "digits"
# The layers that act only in training (identity at inference): left out of the graph.
TRAINING_ONLY = {"Dropout", "RandomTranslation", "RandomRotation", "RandomZoom"}
# Keras' SELU constants (ONNX's defaults differ in the 8th digit).
SELU_ALPHA = 1.6732632423543772
SELU_GAMMA = 1.0507009873554805


class UnsupportedLayerError(DigitsError):
    """The model has a layer, or a layer setting, this exporter does not translate."""


class _Graph:
    """Nodes and weights added in order, each named after the Keras layer it comes from."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []

    def weight(self, name: str, array: np.ndarray) -> str:
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _activation(graph: _Graph, name: str, activation: str, value: str) -> str:
    """`value` through a Keras activation, by its name ("linear": unchanged)."""
    if activation == "linear":
        return value
    output = f"{name}/{activation}"
    simple = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
    if activation in simple:
        return graph.node(simple[activation], [value], output)
    if activation == "elu":
        return graph.node("Elu", [value], output, alpha=1.0)
    if activation == "selu":
        return graph.node("Selu", [value], output, alpha=SELU_ALPHA, gamma=SELU_GAMMA)
    if activation == "softmax":
        return graph.node("Softmax", [value], output, axis=-1)
    if activation == "gelu":  # Keras' exact form: x * (1 + erf(x / sqrt 2)) / 2
        scaled = graph.node(
            "Mul",
            [value, graph.weight(f"{name}/rsqrt2", np.float32([1 / math.sqrt(2)]))],
            f"{name}/gelu_scaled",
        )
        erf = graph.node("Erf", [scaled], f"{name}/gelu_erf")
        one = graph.weight(f"{name}/one", np.float32([1.0]))
        half = graph.weight(f"{name}/half", np.float32([0.5]))
        gate = graph.node(
            "Mul", [graph.node("Add", [erf, one], f"{name}/gelu_1p"), half], f"{name}/gelu_gate"
        )
        return graph.node("Mul", [value, gate], output)
    raise UnsupportedLayerError(
        f"layer {name}: activation {activation!r} has no ONNX translation here; "
        "allowed: linear, relu, gelu, tanh, sigmoid, elu, selu, softmax"
    )


def _activation_name(layer: keras.layers.Layer) -> str:
    activation = layer.get_config().get("activation", "linear")
    if not isinstance(activation, str):  # a serialised callable or object
        raise UnsupportedLayerError(
            f"layer {layer.name}: activation {activation!r} is not a built-in Keras "
            "activation named by a string"
        )
    return activation


def _require(layer: keras.layers.Layer, key: str, allowed: object) -> None:
    value = layer.get_config().get(key)
    if isinstance(value, list):
        value = tuple(value)
    if value != allowed:
        raise UnsupportedLayerError(
            f"layer {layer.name}: {key}={value!r} is not supported; the exporter translates "
            f"{key}={allowed!r} only"
        )


def _flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers in order, nested Sequential models (the augmentation block) unpacked."""
    import keras

    flat: list[keras.layers.Layer] = []
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            flat += _flat_layers(layer)
        else:
            flat.append(layer)
    return flat


def build_onnx_model(model: keras.Model) -> onnx.ModelProto:
    """The ONNX graph of a model build_model made: image (N, 28, 28) -> probabilities (N, 10).

    UnsupportedLayerError, naming the layer and what is allowed, for a layer or setting it does
    not translate (strides, dilation, padding other than "same" for Conv2D, for instance).
    """
    shapes = (tuple(model.input_shape[1:]), tuple(model.output_shape[1:]))
    if shapes != ((IMAGE_HEIGHT, IMAGE_WIDTH), (NUM_CLASSES,)):
        raise DigitsError(
            f"the model maps {model.input_shape} -> {model.output_shape}; expected "
            f"(None, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) -> (None, {NUM_CLASSES})"
        )
    graph = _Graph()
    value = INPUT_NAME
    channels_first = False  # True once the value is (N, C, H, W)
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        name = layer.name
        if kind in TRAINING_ONLY:
            continue
        if kind == "Reshape":
            _require(layer, "target_shape", (IMAGE_HEIGHT, IMAGE_WIDTH, 1))
            shape = graph.weight(f"{name}/shape", np.int64([-1, 1, IMAGE_HEIGHT, IMAGE_WIDTH]))
            value = graph.node("Reshape", [value, shape], name)
            channels_first = True
        elif kind == "Conv2D":
            for key, allowed in (
                ("padding", "same"),
                ("strides", (1, 1)),
                ("dilation_rate", (1, 1)),
                ("groups", 1),
                ("data_format", "channels_last"),
            ):
                _require(layer, key, allowed)
            kernel = layer.kernel.numpy()  # (kh, kw, in, out) -> ONNX's (out, in, kh, kw)
            height, width = kernel.shape[:2]
            if height % 2 == 0 or width % 2 == 0:
                raise UnsupportedLayerError(
                    f"layer {name}: kernel {height}x{width}; 'same' padding is translated for "
                    "odd kernel sizes only"
                )
            inputs = [value, graph.weight(f"{name}/kernel", kernel.transpose(3, 2, 0, 1))]
            if layer.use_bias:
                inputs.append(graph.weight(f"{name}/bias", layer.bias.numpy()))
            value = graph.node(
                "Conv",
                inputs,
                f"{name}/conv",
                kernel_shape=[height, width],
                pads=[height // 2, width // 2, height // 2, width // 2],
            )
            value = _activation(graph, name, _activation_name(layer), value)
        elif kind == "BatchNormalization":
            _require(layer, "axis", -1)
            channels = layer.moving_mean.shape[0]
            ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
            scale = layer.gamma.numpy() if layer.scale else ones
            offset = layer.beta.numpy() if layer.center else zeros
            value = graph.node(
                "BatchNormalization",
                [
                    value,
                    graph.weight(f"{name}/gamma", scale),
                    graph.weight(f"{name}/beta", offset),
                    graph.weight(f"{name}/moving_mean", layer.moving_mean.numpy()),
                    graph.weight(f"{name}/moving_variance", layer.moving_variance.numpy()),
                ],
                name,
                epsilon=float(layer.epsilon),
            )
        elif kind == "Activation":
            value = _activation(graph, name, _activation_name(layer), value)
        elif kind == "MaxPooling2D":
            _require(layer, "padding", "valid")
            _require(layer, "data_format", "channels_last")
            pool = tuple(layer.get_config()["pool_size"])
            strides = tuple(layer.get_config()["strides"] or pool)
            value = graph.node(
                "MaxPool", [value], name, kernel_shape=list(pool), strides=list(strides)
            )
        elif kind == "Flatten":
            if channels_first:  # back to Keras' (N, H, W, C) order before flattening
                value = graph.node("Transpose", [value], f"{name}/channels_last", perm=[0, 2, 3, 1])
                channels_first = False
            value = graph.node("Flatten", [value], name, axis=1)
        elif kind == "Dense":
            inputs = [value, graph.weight(f"{name}/kernel", layer.kernel.numpy())]
            if layer.use_bias:
                inputs.append(graph.weight(f"{name}/bias", layer.bias.numpy()))
            value = graph.node("Gemm", inputs, f"{name}/dense")
            value = _activation(graph, name, _activation_name(layer), value)
        else:
            raise UnsupportedLayerError(
                f"layer {name}: {kind} has no ONNX translation here; translated: Reshape, "
                "Conv2D, BatchNormalization, Activation, MaxPooling2D, Flatten, Dense, and "
                f"(left out, training only) {', '.join(sorted(TRAINING_ONLY))}"
            )
    graph.nodes.append(helper.make_node("Identity", [value], [OUTPUT_NAME], name=OUTPUT_NAME))
    onnx_graph = helper.make_graph(
        graph.nodes,
        model.name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", IMAGE_HEIGHT, IMAGE_WIDTH]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=graph.weights,
    )
    exported = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
    )
    onnx.checker.check_model(exported, full_check=True)
    return exported


def onnx_bytes(model: keras.Model) -> bytes:
    """The serialised ONNX model: the same bytes for the same weights."""
    return build_onnx_model(model).SerializeToString(deterministic=True)
