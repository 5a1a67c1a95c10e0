"""The tuner's search space (tools/tune.yaml): which params each network family searches, and
the -S values of one trial asked of Optuna. Used by tools/tune.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SPACE = Path(__file__).with_name("tune.yaml")
KINDS = ("choice", "int", "float")


class TuneError(Exception):
    """A search space, study or experiment the tuner cannot use; one line says what and why."""


@dataclass(frozen=True)
class Param:
    key: str  # the -S key, e.g. train.dropout_rate
    kind: str  # choice | int | float | fixed
    values: tuple  # the choices, (low, high), or (value,)
    log: bool = False


@dataclass(frozen=True)
class Space:
    objective_metrics: str  # a metrics file of the pipeline
    objective_key: str  # dotted key inside it
    sampler_seed: int
    families: dict[str, tuple[Param, ...]]  # train.architecture value -> its params
    text: str  # the file's text: a study refuses another space


def override_value(value: Any) -> str:
    """A YAML value as an -S value: [128,64], true, 0.001, cosine."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(map(override_value, value)) + "]"
    return str(value)


def parse_param(family: str, key: str, spec: Any) -> Param:
    where = f"families.{family}.{key}"
    if not isinstance(spec, dict):
        return Param(key, "fixed", (spec,))
    kinds = [kind for kind in KINDS if kind in spec]
    unknown = sorted(set(spec) - {*KINDS, "log"})
    if len(kinds) != 1 or unknown:
        raise TuneError(f"{where}: give exactly one of {', '.join(KINDS)} (and optionally log)")
    (kind,) = kinds
    values = spec[kind]
    log = spec.get("log", False)
    if kind == "choice":
        if not isinstance(values, list) or not values or log:
            raise TuneError(f"{where}: choice must be a non-empty list, without log")
        return Param(key, kind, tuple(values))
    number = int if kind == "int" else (int, float)
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in values)
        or not values[0] < values[1]
        or (log and values[0] <= 0)
        or not isinstance(log, bool)
    ):
        raise TuneError(
            f"{where}: {kind} must be [low, high] with low < high (and low > 0 with log: true), "
            f"got {values!r}"
        )
    return Param(key, kind, (values[0], values[1]), log)


def load_space(path: Path = SPACE) -> Space:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise TuneError(f"cannot read the search space {path}: {error}") from None
    expected = {"objective", "sampler_seed", "families"}
    if not isinstance(data, dict) or set(data) != expected:
        raise TuneError(f"{path}: needs exactly the keys {sorted(expected)}")
    objective = data["objective"]
    if not isinstance(objective, dict) or set(objective) != {"metrics", "key"}:
        raise TuneError(f"{path}: objective needs exactly metrics and key")
    families = data["families"]
    if not isinstance(families, dict) or not families:
        raise TuneError(f"{path}: families must map train.architecture values to params")
    return Space(
        objective_metrics=objective["metrics"],
        objective_key=objective["key"],
        sampler_seed=int(data["sampler_seed"]),
        families={
            family: tuple(parse_param(family, key, spec) for key, spec in (params or {}).items())
            for family, params in families.items()
        },
        text=text,
    )


def suggest(space: Space, trial: Any) -> list[str]:
    """The -S values of one trial, asked of an Optuna trial (ask/tell API)."""
    family = trial.suggest_categorical("family", list(space.families))
    settings = [f"train.architecture={family}"]
    for param in space.families[family]:
        name = f"{family}/{param.key}"  # each family's params are distinct Optuna params
        if param.kind == "fixed":
            value = param.values[0]
        elif param.kind == "choice":
            # Optuna's choices are scalars: a list is asked for as its -S text.
            texts = [override_value(choice) for choice in param.values]
            settings.append(f"{param.key}={trial.suggest_categorical(name, texts)}")
            continue
        elif param.kind == "int":
            value = trial.suggest_int(name, *param.values, log=param.log)
        else:
            value = trial.suggest_float(name, *param.values, log=param.log)
        settings.append(f"{param.key}={override_value(value)}")
    return settings


def objective_value(space: Space, data: Mapping[str, Any]) -> float | None:
    """The objective from one experiment's `dvc exp show --json` data; None if it has none."""
    found: Any = (data.get("metrics") or {}).get(space.objective_metrics, {}).get("data")
    for part in space.objective_key.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return float(found) if isinstance(found, int | float) else None
