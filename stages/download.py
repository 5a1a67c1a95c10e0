"""Stage download: dataset mirrors -> data/raw (verified, decompressed IDX files).

The mirrors and the pinned content of each file come from the dataset sources file
(data/datasets.yaml); params.yaml's download section picks the dataset and sets the retries.

$MNIST_MIRROR (an http(s) or file URL, or a local folder such as ../shared/mnist) is tried
before the listed mirrors: this is how offline machines and CI run the real pipeline.
For download.dataset=fashion-mnist the variable is $FASHION_MNIST_MIRROR.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from digits.download import download_all, mirror_list
from digits.params import DownloadParams, load_dataset_source, load_section
from stages._cli import argument_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--datasets", type=Path, required=True, help="dataset sources file (mirrors, pins)"
    )
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    params = load_section(args.params, "download", DownloadParams)
    source = load_dataset_source(args.datasets, params.dataset)

    mirrors = mirror_list(os.environ.get(params.mirror_variable), source.mirrors)
    download_all(source, params, mirrors, args.out_dir, progress=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
