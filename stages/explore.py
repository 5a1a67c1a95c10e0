"""Stage explore: data/processed -> plots/explore (sample grid, class distribution, mean digits)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from digits.dataset import load_split
from digits.files import atomic_directory, save_figure
from digits.params import ExploreParams, load_section
from digits.plots import class_counts, class_distribution_figure, mean_digits_figure, sample_grid
from stages._cli import argument_parser, run

SPLITS = ("train", "validation", "test")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    params = load_section(args.params, "explore", ExploreParams)

    data = {split: load_split(args.processed_dir, split) for split in SPLITS}
    labels = {split: one_hot.argmax(axis=1) for split, (_, one_hot) in data.items()}
    train_images = data["train"][0]

    counts = class_counts(labels)
    with atomic_directory(args.out_dir) as out_dir:
        counts.to_csv(out_dir / "class_distribution.csv", index=False)
        save_figure(class_distribution_figure(counts), out_dir / "class_distribution.png")
        grid = sample_grid(train_images, labels["train"], params.sample_rows, params.sample_columns)
        save_figure(grid, out_dir / "samples.png")
        save_figure(mean_digits_figure(train_images, labels["train"]), out_dir / "mean_digits.png")
    print(counts.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
