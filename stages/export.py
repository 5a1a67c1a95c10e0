"""Stage export: model (.keras) -> the same model as ONNX (.onnx), for ONNX Runtime.

The graph comes from the model's layers and weights (digits/onnx_export.py): the same .keras
file gives the same .onnx bytes. Reads no params.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from digits.determinism import pin_cpu_kernels
from digits.files import atomic_open
from stages._cli import argument_parser, run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="input .keras file")
    parser.add_argument("--onnx", type=Path, required=True, help="output .onnx file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    pin_cpu_kernels()
    from digits.model import load_model
    from digits.onnx_export import onnx_bytes

    exported = onnx_bytes(load_model(args.model))
    with atomic_open(args.onnx, "wb") as file:
        file.write(exported)
    print(f"exported {args.model} to {args.onnx} ({len(exported):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
