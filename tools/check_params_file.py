"""Refuse a params file whose YAML aliases expand past a bound, before DVC reads it.

DVC loads params.yaml itself, expanding every alias, before any stage (and the stage's own
check) runs: a 1.7 KB file of nested aliases then takes DVC minutes and gigabytes. This walks
the parser's event stream instead, counting each alias as the number of values its anchor
holds, without building the values, and stops at the bound. `make repro`, `make app-model` and
`make verify` (so CI) run it first:

    python -m tools.check_params_file params.yaml app-model/recipe.yaml

Prints nothing and exits 0 when every file is within the bound; else one line per bad file on
stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml import events as yaml_events
from ruamel.yaml.error import YAMLError

from digits.params import MAX_VALUES


class TooManyValues(Exception):
    """The file expands past the bound, or an alias cannot be expanded at all."""


def expanded_values(events: Iterable[yaml_events.Event], limit: int) -> int:
    """The values (scalars and collections) the events make once every alias is expanded;
    raises TooManyValues as soon as that passes `limit`."""
    anchored: dict[str, int] = {}  # anchor -> values in its node, aliases expanded
    open_collections: list[list] = []  # [values so far, anchor] of each collection being read
    total = 0
    for event in events:
        if isinstance(event, yaml_events.CollectionStartEvent):
            open_collections.append([1, event.anchor])
            total += 1
        elif isinstance(event, yaml_events.CollectionEndEvent):
            values, anchor = open_collections.pop()  # already in the total, value by value
            _add_to_parent(values, anchor, open_collections, anchored)
        elif isinstance(event, yaml_events.ScalarEvent):
            total += 1
            _add_to_parent(1, event.anchor, open_collections, anchored)
        elif isinstance(event, yaml_events.AliasEvent):
            if event.anchor not in anchored:  # undefined, or inside its own anchor's node
                raise TooManyValues(f"has alias *{event.anchor} with no complete anchor before it")
            total += anchored[event.anchor]
            _add_to_parent(anchored[event.anchor], None, open_collections, anchored)
        if total > limit:
            raise TooManyValues(f"expands to more than {limit:,} values (YAML aliases repeat them)")
    return total


def _add_to_parent(
    values: int, anchor: str | None, open_collections: list[list], anchored: dict[str, int]
) -> None:
    """A node has been read whole: remember its size under its anchor, add it to its parent."""
    if anchor:
        anchored[anchor] = values
    if open_collections:
        open_collections[-1][0] += values


def check(path: Path, limit: int = MAX_VALUES) -> str | None:
    """None if `path` is within the bound, else what is wrong, on one line."""
    try:
        with open(path, encoding="utf-8") as stream:
            expanded_values(YAML(typ="safe", pure=True).parse(stream), limit)
    except OSError as error:
        return f"cannot read {path}: {error.strerror}"
    except (YAMLError, UnicodeDecodeError) as error:
        return f"{path} is not valid YAML: {' '.join(str(error).split())}"
    except TooManyValues as error:
        return f"{path} {error}; refused before DVC reads it"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="params files to check")
    args = parser.parse_args(argv)
    problems = [problem for path in args.files if (problem := check(path))]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
