"""Stage decode: data/raw (IDX files) -> data/interim/{train,test}.npz (uint8 arrays).

Each split's two IDX files are parsed strictly (digits.idx) and saved as `images`, (N, 28, 28)
uint8, and `labels`, (N,) uint8. The output folder appears only when both splits decode, so a
bad test file never leaves a train-only folder behind. Decode reads no params.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from digits.dataset import SPLIT_FILES, save_split
from digits.files import atomic_directory
from digits.idx import read_split
from stages._cli import argument_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)

    with atomic_directory(args.out_dir) as out_dir:
        for split, (images_name, labels_name) in SPLIT_FILES.items():
            images, labels = read_split(args.raw_dir / images_name, args.raw_dir / labels_name)
            save_split(out_dir, split, images, labels)
            _, rows, columns = images.shape
            print(
                f"{split}: {len(images):,} images {rows}x{columns}, "
                f"labels {labels.min()}..{labels.max()}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
