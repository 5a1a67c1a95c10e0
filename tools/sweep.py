"""The documented sweep: each experiment's settings (-S values of `dvc exp run`) and CI runner,
the `dvc exp run` command of each row, and how to compare them in a terminal (SHOW).

One list for the local queue, the CI matrix and the docs' table (tools/experiments.py), and
for the benchmarks that reuse a row's network (tools/bench_frameworks.py). The `app-model` row
is the app's recipe (app-model/recipe.yaml, what train-app trains): its settings are computed
from that file, the keys where its train section differs from params.yaml's. Importing this
module and listing the rows and their runners needs the standard library only (the sweep
workflow's plan job does that before any set-up); a recipe row's settings need the project's
dependencies (PyYAML, pydantic), read when they are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
APP_RECIPE = ROOT / "app-model" / "recipe.yaml"

# The GitHub runner label of a CI job, unless its row names another (e.g. a self-hosted GPU
# runner's label) or the SWEEP_RUNNERS variable ({"name": "label", ...}) overrides it.
DEFAULT_RUNNER = "ubuntu-24.04"


class Experiment(NamedTuple):
    description: str
    own_settings: Sequence[str] = ()  # the -S values, unless the row is a recipe file's
    runner: str = DEFAULT_RUNNER
    recipe: Path | None = None  # a file with a complete train section (app-model/recipe.yaml)

    @property
    def settings(self) -> list[str]:
        """The -S values: the row's own, or those that turn params.yaml's train section into
        the recipe's."""
        if self.recipe is None:
            return list(self.own_settings)
        from digits.params import TrainParams, differing_settings, load_section

        base = load_section(ROOT / "params.yaml", "train", TrainParams)
        return differing_settings(base, load_section(self.recipe, "train", TrainParams), "train")


CNN = [
    "train.architecture=cnn",
    "train.conv_filters=[32,64]",
    "train.hidden_units=[128]",
    "train.dropout_rate=0.5",
    "train.schedule=cosine",
]
# What each row's `dvc exp run` reproduces: the pipeline's own stages (and whatever they need
# upstream), never the app's model (app-model/dvc.yaml, docs/app.md), which the
# Fashion-MNIST rows would otherwise retrain on their data. The baseline forces a run of train and
# evaluate so that it gets a timing too.
TARGETS = ["evaluate", "explore"]
EXPERIMENTS: dict[str, Experiment] = {
    "notebook-mlp": Experiment("the notebook's MLP (the defaults)", []),
    "tuned-mlp": Experiment(
        "wider MLP, cosine schedule",
        [
            "train.hidden_units=[512,256]",
            "train.dropout_rate=0.3",
            "train.schedule=cosine",
            "train.epochs=30",
        ],
    ),
    "cnn": Experiment("CNN", [*CNN, "train.epochs=15"]),
    # The app's network for a two-minute budget: no batch norm, no augmentation, batch 64.
    "cnn-quick": Experiment(
        "the app's network without batch norm or augmentation, batch 64, 5 epochs",
        [
            "train.architecture=cnn",
            "train.conv_filters=[32,32,64]",
            "train.convs_per_block=[1,2,2]",
            "train.hidden_units=[256]",
            "train.dropout_rate=0.25",
            "train.schedule=one-cycle",
            "train.learning_rate=0.004",
            "train.batch_size=64",
            "train.epochs=5",
        ],
    ),
    "app-model": Experiment("the app's model (app-model/recipe.yaml)", recipe=APP_RECIPE),
    "fashion-mlp": Experiment(
        "Fashion-MNIST, the notebook's MLP", ["download.dataset=fashion-mnist"]
    ),
    "fashion-cnn": Experiment(
        "Fashion-MNIST, CNN",
        ["download.dataset=fashion-mnist", *CNN, "train.epochs=15"],
    ),
}


# The sweep side by side in at most 120 columns: the experiment, its headline scores and size,
# and the two params that tell the rows apart besides their names. (`dvc exp show` alone has a
# column for every metric, param and dependency.)
SHOW = [
    "dvc",
    "exp",
    "show",
    "--drop",
    ".*",
    "--keep",
    r"Experiment|test\.(accuracy|macro\.f1)|parameters|train\.(architecture|epochs)",
]


def command(name: str, extra_settings: Sequence[str] = ()) -> list[str]:
    """`dvc exp run` for one row; `extra_settings` (-S values) come last, so they win."""
    settings = [*EXPERIMENTS[name].settings, *extra_settings]
    # Without settings nothing changed: force train and evaluate (not the data stages, whose
    # outputs a CI job pulls instead of downloading and preprocessing again; train's downstream
    # is evaluate only).
    targets = ["-f", "--downstream", "train"] if not settings else TARGETS
    return ["dvc", "exp", "run", "-n", name, *targets] + [
        part for setting in settings for part in ("-S", setting)
    ]
