"""Stage preprocess: data/interim/{train,test}.npz -> data/processed/{train,validation,test}.npz.

Images become float32 in [0, 1] and labels one-hot float32; the validation split is held out
from the training set (never from the test set).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from digits.dataset import load_split, save_split
from digits.files import atomic_directory
from digits.params import PreprocessParams, load_section
from digits.preprocess import one_hot, scale_images, split_train_validation
from stages._cli import argument_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("interim_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    params = load_section(args.params, "preprocess", PreprocessParams)

    train_images, train_labels = load_split(args.interim_dir, "train")
    test_images, test_labels = load_split(args.interim_dir, "test")
    train_images, train_labels, validation_images, validation_labels = split_train_validation(
        train_images, train_labels, params.validation_fraction, params.seed
    )
    splits = {
        "train": (train_images, train_labels),
        "validation": (validation_images, validation_labels),
        "test": (test_images, test_labels),
    }
    with atomic_directory(args.out_dir) as out_dir:
        for split, (images, labels) in splits.items():
            save_split(out_dir, split, scale_images(images), one_hot(labels))
            print(f"{split}: {len(images):,} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
