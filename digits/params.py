"""Typed, validated params: one frozen model per params.yaml section.

A stage loads only its own section. Unknown keys, missing keys, wrong types and out-of-range
values stop the stage before any work, with a message that names the key, the value and what
is allowed.
"""

from __future__ import annotations

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
from digits.errors import PipelineError


class ParamsError(PipelineError):
    """params.yaml is missing, unreadable, or holds a value that is not allowed."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PositiveInt = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ExpectedFile(Section):
    """Size and SHA-256 of a file's decompressed content (the same on every mirror)."""

    bytes: PositiveInt
    sha256: Sha256


class DownloadParams(Section):
    mirrors: Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]
    files: dict[str, ExpectedFile]
    timeout_seconds: Annotated[float, Field(gt=0, le=600)]
    retries: Annotated[int, Field(ge=0, le=10)]
    backoff_seconds: Annotated[float, Field(ge=0, le=60)]

    @model_validator(mode="after")
    def _all_four_files(self) -> DownloadParams:
        if sorted(self.files) != sorted(RAW_FILE_NAMES):
            raise ValueError(
                f"files must name exactly {list(RAW_FILE_NAMES)}, got {sorted(self.files)}"
            )
        return self


class PreprocessParams(Section):
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)]
    seed: Seed


class ExploreParams(Section):
    sample_rows: Annotated[int, Field(ge=1, le=20)]
    sample_columns: Annotated[int, Field(ge=1, le=20)]


class TrainParams(Section):
    seed: Seed
    hidden_units: Annotated[
        list[Annotated[int, Field(ge=1, le=8192)]], Field(min_length=1, max_length=8)
    ]
    activation: Literal["relu", "gelu", "tanh", "sigmoid", "elu", "selu"]
    dropout_rate: Annotated[float, Field(ge=0, lt=1)]
    optimizer: Literal["adam", "sgd", "rmsprop"]
    learning_rate: Annotated[float, Field(gt=0, le=10)]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    epochs: Annotated[int, Field(ge=1, le=1000)]
    batch_size: Annotated[int, Field(ge=1, le=65536)]

    @model_validator(mode="after")
    def _momentum_only_for_sgd(self) -> TrainParams:
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(
                f"momentum={self.momentum} applies to sgd and rmsprop only; "
                f"set it to 0 for optimizer={self.optimizer!r}"
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


def read_params_file(path: str | os.PathLike[str]) -> dict:
    """Parse params.yaml the way DVC does (ruamel.yaml, YAML 1.2: `1e-3` is a number), with
    duplicate keys rejected rather than silently overwritten."""
    try:
        with open(path, encoding="utf-8") as f:
            data = YAML(typ="safe", pure=True).load(f)
    except OSError as error:
        raise ParamsError(f"cannot read params file {path}: {error.strerror}") from error
    except YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
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


def _describe(name: str, model: type[Section], problem: dict) -> str:
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


def parse_section(name: str, raw: object, model: type[S]) -> S:
    """Validate one section; every problem becomes one line `name.key: message (got value)`."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(name, model, problem) for problem in error.errors()]
        raise ParamsError("invalid params:\n" + "\n".join(lines)) from None


def load_section(path: str | os.PathLike[str], name: str, model: type[S]) -> S:
    data = read_params_file(path)
    if name not in data:
        raise ParamsError(f"{path} has no section {name!r}; it has {sorted(data)}")
    return parse_section(name, data[name], model)
