"""Typed, validated params: one frozen model per params.yaml section, and the dataset sources.

A stage loads only its own section. Unknown keys, missing keys, wrong types and out-of-range
values stop the stage before any work, with a message that names the key, the value and what
is allowed. The dataset sources (mirrors and the pinned content of each file) are data identity,
not hyperparameters: they live in their own file (data/datasets.yaml), validated the same way.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from ruamel.yaml import YAML, YAMLError

from digits.dataset import RAW_FILE_NAMES
from digits.errors import DigitsError


class ParamsError(DigitsError):
    """params.yaml is missing, unreadable, or holds a value that is not allowed."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PositiveInt = Annotated[int, Field(gt=0)]
# Up to 2**30: the augmentation layers use seed + 1..3, which must stay within int32.
Seed = Annotated[int, Field(ge=0, le=2**30)]


class ExpectedFile(Section):
    """Size and SHA-256 of a file's decompressed content (the same on every mirror)."""

    bytes: PositiveInt
    sha256: Sha256


class DatasetSource(Section):
    """Where one dataset comes from: mirrors to try, and the content each file must have."""

    mirrors: Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]
    files: dict[str, ExpectedFile]
    licence: Annotated[str, StringConstraints(min_length=1)]  # its authors and terms, for cards

    @model_validator(mode="after")
    def _all_four_files(self) -> DatasetSource:
        if sorted(self.files) != sorted(RAW_FILE_NAMES):
            raise ValueError(
                f"files must name exactly {list(RAW_FILE_NAMES)}, got {sorted(self.files)}"
            )
        return self


class DownloadParams(Section):
    dataset: Annotated[str, StringConstraints(min_length=1)]  # a name in the dataset sources file
    timeout_seconds: Annotated[float, Field(gt=0, le=600)]
    retries: Annotated[int, Field(ge=0, le=10)]
    backoff_seconds: Annotated[float, Field(ge=0, le=60)]

    @property
    def mirror_variable(self) -> str:
        """The environment variable naming a mirror to try first: MNIST_MIRROR for mnist."""
        return self.dataset.upper().replace("-", "_") + "_MIRROR"


class PreprocessParams(Section):
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)]
    seed: Seed


class ExploreParams(Section):
    sample_rows: Annotated[int, Field(ge=1, le=20)]
    sample_columns: Annotated[int, Field(ge=1, le=20)]


class AugmentationParams(Section):
    """Random shifts, rotations and zooms of the training images (Keras preprocessing layers,
    active in training only)."""

    enabled: bool
    max_shift: Annotated[float, Field(ge=0, le=0.5)]  # fraction of the image's width / height
    max_rotation_degrees: Annotated[float, Field(ge=0, le=180)]
    max_zoom: Annotated[float, Field(ge=0, lt=1)]  # fraction: 0.1 zooms between 90% and 110%


ConvCount = Annotated[int, Field(ge=1, le=3)]


class TrainParams(Section):
    seed: Seed
    architecture: Literal["mlp", "cnn"]
    # mlp: the hidden Dense layers; cnn: the Dense layers after the convolutions.
    hidden_units: Annotated[list[Annotated[int, Field(ge=1, le=8192)]], Field(max_length=8)]
    # cnn only: one block per entry (convs_per_block 3x3 convolutions, then 2x2 max-pooling).
    conv_filters: Annotated[list[Annotated[int, Field(ge=1, le=1024)]], Field(max_length=4)]
    # cnn only: the same count for every block, or one per conv_filters entry ([1, 2]: a single
    # convolution at full resolution, where each one costs four times as much as in the next)
    convs_per_block: ConvCount | Annotated[list[ConvCount], Field(min_length=1, max_length=4)]
    batch_norm: bool  # cnn only: batch normalisation after every convolution
    activation: Literal["relu", "gelu", "tanh", "sigmoid", "elu", "selu"]
    dropout_rate: Annotated[float, Field(ge=0, lt=1)]
    # the share of each target's probability spread evenly over the ten classes (0: one-hot)
    label_smoothing: Annotated[float, Field(ge=0, lt=1)]
    augmentation: AugmentationParams
    optimizer: Literal["adam", "sgd", "rmsprop"]
    learning_rate: Annotated[float, Field(gt=0, le=10)]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    # constant, or decayed over the whole run: cosine (to 0) or exponential (to 1% at the end);
    # one-cycle: up from 1/25 of the rate over the first 30% of the run, then cosine to 0
    schedule: Literal["constant", "cosine", "exponential", "one-cycle"]
    epochs: Annotated[int, Field(ge=1, le=1000)]
    batch_size: Annotated[int, Field(ge=1, le=65536)]
    # Stop after this many epochs without a lower validation loss and keep the best weights;
    # 0 turns early stopping off.
    early_stopping_patience: Annotated[int, Field(ge=0, le=1000)]

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(
                f"momentum={self.momentum} applies to sgd and rmsprop only; "
                f"set it to 0 for optimizer={self.optimizer!r}"
            )
        if self.architecture == "mlp" and not self.hidden_units:
            raise ValueError("architecture='mlp' needs at least one entry in hidden_units")
        if self.architecture == "cnn" and not self.conv_filters:
            raise ValueError("architecture='cnn' needs at least one entry in conv_filters")
        counts = self.convs_per_block
        if isinstance(counts, list) and len(counts) != len(self.conv_filters):
            raise ValueError(
                f"convs_per_block={counts} has {len(counts)} entries for "
                f"{len(self.conv_filters)} conv_filters entries: give one count per block, "
                "or a single number for all"
            )
        return self


class EvaluateParams(Section):
    misclassified_examples: Annotated[int, Field(ge=1, le=100)]


SECTIONS: dict[str, type[Section]] = {
    "download": DownloadParams,
    "preprocess": PreprocessParams,
    "explore": ExploreParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}

S = TypeVar("S", bound=Section)


# The most values (keys, values and collections, an alias counted as often as it repeats its
# anchor's) a params file may expand to; params.yaml holds about a hundred. tools/
# check_params_file.py applies it before DVC reads the file.
MAX_VALUES = 100_000


def read_params_file(path: str | os.PathLike[str]) -> dict:
    """Parse params.yaml the way DVC does (ruamel.yaml, YAML 1.2: `1e-3` is a number), with
    duplicate keys rejected rather than silently overwritten."""
    try:
        with open(path, encoding="utf-8") as f:
            data = YAML(typ="safe", pure=True).load(f)
    except OSError as error:
        raise ParamsError(f"cannot read {path}: {error.strerror}") from error
    except YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    # An alias repeats its anchor's value without copying it: a 1 KB file of nested aliases
    # ("billion laughs") loads in milliseconds, then takes gigabytes to validate or to print in
    # an error message. Count the values as often as aliases repeat them, up to a bound.
    max_values = MAX_VALUES
    pending, count = [data], 0
    while pending:
        value = pending.pop()
        count += 1
        if count > max_values:
            raise ParamsError(
                f"{path} expands to more than {max_values:,} values (YAML aliases repeat "
                "them); refused"
            )
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return data


def _allowed_keys(model: type[Section], location: tuple) -> list[str]:
    """Field names of the (possibly nested) section that holds the last key of `location`."""
    current: Any = model
    for part in location[:-1]:
        if isinstance(current, type) and issubclass(current, Section):
            current = current.model_fields[str(part)].annotation
        else:  # dict[str, Section]: `part` is a free-form key such as a file name
            current = get_args(current)[-1]
    return list(current.model_fields)


def _format_problem(name: str, model: type[Section], problem: dict) -> str:
    """One line per problem: the key, what is wrong and what is allowed, and the value given."""
    key = ".".join([name, *map(str, problem["loc"])])
    if problem["type"] == "missing":
        return f"  {key}: missing key"
    if problem["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(model, problem["loc"]))
        return f"  {key}: unknown key; allowed keys: {allowed}"
    if problem["type"] == "value_error" and not problem["loc"]:  # a rule across keys
        return f"  {key}: {problem['msg'].removeprefix('Value error, ')}"
    return f"  {key}: {problem['msg']} (got {problem['input']!r})"


def parse_section(name: str, raw: object, model: type[S], what: str = "params") -> S:
    """Validate one section; every problem becomes one line `name.key: message (got value)`."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = [_format_problem(name, model, problem) for problem in error.errors()]
        raise ParamsError(f"invalid {what}:\n" + "\n".join(lines)) from None


def load_section(path: str | os.PathLike[str], name: str, model: type[S]) -> S:
    data = read_params_file(path)
    if name not in data:
        raise ParamsError(f"{path} has no section {name!r}; it has {sorted(data)}")
    return parse_section(name, data[name], model)


def differing_settings(base: Section, other: Section, prefix: str) -> list[str]:
    """`dvc exp run -S` values that turn `base` into `other`: one `prefix.key=value` per leaf
    whose value differs (nested sections as dotted keys), in `other`'s key order. Values are
    written as DVC's override grammar reads them: lists as [32,64], booleans as true/false."""
    return _differing_leaves(base.model_dump(), other.model_dump(), prefix)


def _differing_leaves(base: dict, other: dict, prefix: str) -> list[str]:
    settings = []
    for key, value in other.items():
        before, name = base.get(key), f"{prefix}.{key}"
        if isinstance(value, dict) and isinstance(before, dict):
            settings += _differing_leaves(before, value, name)
        elif value != before:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            settings.append(f"{name}={text}")
    return settings


def load_dataset_source(path: str | os.PathLike[str], dataset: str) -> DatasetSource:
    """The mirrors and pinned files of `dataset` (download.dataset), from a sources file whose
    every entry is validated (a typo in another dataset's pins is not left for later)."""
    data = read_params_file(path)
    what = f"dataset sources in {path}"
    sources = {name: parse_section(name, raw, DatasetSource, what) for name, raw in data.items()}
    if dataset not in sources:
        raise ParamsError(
            f"download.dataset={dataset!r} is not a dataset of {path}; it lists {sorted(sources)}"
        )
    return sources[dataset]
