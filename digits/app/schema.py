"""The JSON API's bodies as pydantic models, from which FastAPI writes /openapi.json: what
POST /api/predict takes as JSON (PixelsRequest) and what the endpoints answer (Prediction,
ModelDescription, ErrorMessage); and the reading of a JSON body into an image.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES


class PixelsError(ValueError):
    """A JSON body that is not {"pixels": 28 rows of 28 numbers in [0, 1]}: the message says
    where and what, for the client."""


SHAPE = f"{IMAGE_HEIGHT} rows of {IMAGE_WIDTH} numbers in [0, 1]"
Pixel = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# fail_fast: the first bad value ends the validation (a 1 MiB body holds 200,000 values).
PixelRow = Annotated[
    list[Pixel], Field(min_length=IMAGE_WIDTH, max_length=IMAGE_WIDTH, fail_fast=True)
]


class PixelsRequest(BaseModel):
    """The JSON body of POST /api/predict: an image already in MNIST's conventions."""

    # strict: 0 and 1 are numbers, true and "0.5" are not; no other keys.
    model_config = ConfigDict(extra="forbid", strict=True)

    pixels: Annotated[
        list[PixelRow],
        Field(
            min_length=IMAGE_HEIGHT,
            max_length=IMAGE_HEIGHT,
            fail_fast=True,
            description=f"{SHAPE}: ink bright on black, centred as in MNIST",
        ),
    ]


class RankedDigit(BaseModel):
    digit: int = Field(ge=0, le=9)
    probability: float = Field(ge=0, le=1)


class Prediction(BaseModel):
    """What POST /api/predict answers (digits.app.predict.describe)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "digit": 7,
                    "probability": 0.98,
                    "probabilities": [0, 0, 0.01, 0, 0, 0, 0, 0.98, 0, 0.01],
                    "top3": [
                        {"digit": 7, "probability": 0.98},
                        {"digit": 2, "probability": 0.01},
                        {"digit": 9, "probability": 0.01},
                    ],
                    "not_a_digit": None,
                }
            ]
        }
    )

    digit: int = Field(ge=0, le=9, description="the digit read")
    probability: float = Field(ge=0, le=1, description="its probability")
    probabilities: list[float] = Field(
        min_length=NUM_CLASSES, max_length=NUM_CLASSES, description="all ten"
    )
    top3: list[RankedDigit] = Field(min_length=3, max_length=3, description="the three likeliest")
    not_a_digit: str | None = Field(
        description="null, or why the image does not look like a digit (digits.app.predict)"
    )


class ModelDescription(BaseModel):
    """What GET /api/model answers: the model that reads the digits."""

    name: str
    path: str
    md5: str
    test_accuracy: float | None
    description: str = Field(description="one line, as digits-serve prints it")


class ErrorMessage(BaseModel):
    """Every error's body: what was wrong with the request."""

    error: str = Field(examples=["what was wrong"])


def parse_pixels(body: bytes) -> np.ndarray:
    """A JSON body {"pixels": 28 rows of 28 numbers in [0, 1]} -> (28, 28) float32.

    The JSON syntax is read by the standard library (so NaN and 100,000 nested brackets get
    their own messages), its shape and values are checked by PixelsRequest."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PixelsError(f"invalid JSON: {error}") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise PixelsError(f"invalid JSON: {error}") from None
    except RecursionError:  # json.loads recurses once per [ or {: 100,000 of them
        raise PixelsError("invalid JSON: nested too deeply") from None
    try:
        request = PixelsRequest.model_validate(document)
    except ValidationError as error:
        raise PixelsError(pixels_error(document, error)) from None
    return np.array(request.pixels, dtype=np.float32)


def pixels_error(document: Any, error: ValidationError) -> str:
    """PixelsRequest's first error as one sentence that says where and what, for the client."""
    first = error.errors(include_url=False)[0]
    where = first["loc"]
    if not where or where[0] != "pixels" or first["type"] == "missing":
        if isinstance(document, dict):
            keys = sorted(map(str, document))
            got = f"{keys[:5]}" + (f" and {len(keys) - 5:,} more keys" if len(keys) > 5 else "")
        elif isinstance(document, list):
            got = f"an array of {len(document):,} items"
        else:
            got = json_kind(document)
        return f'expected an object {{"pixels": {SHAPE}}}, got {got}'
    if len(where) == 1:
        return f"pixels must be {SHAPE}; got {json_kind(first['input'], 'rows')}"
    if len(where) == 2:
        return (
            f"pixels row {where[1]}: expected {IMAGE_WIDTH} numbers in [0, 1], "
            f"got {json_kind(first['input'], 'numbers')}"
        )
    return f"pixels row {where[1]}, column {where[2]}: {first['input']!r} is not a number in [0, 1]"


def json_kind(value: Any, items: str = "items") -> str:
    """What a JSON value is, in words: '27 rows', 'a string', 'null', ..."""
    if isinstance(value, list):
        return f"{len(value):,} {items}"
    kinds = {dict: "an object", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")
