"""The installed commands: `digits-predict` (image files -> digits), `digits-serve` (drawing page).

    digits-predict IMAGE... [--model PATH] [--json]
    digits-serve [--model PATH] [--host 127.0.0.1] [--port 8000] [--allowed-hosts NAMES] [--quiet]
    digits-predict --version, digits-serve --version: the installed package's version

Without --model both load the app's model, data/app-model/model.keras, or when it is missing the
pipeline's MLP, data/model/model.keras, with a note on stderr (digits.app.artifacts). Both say
which model they load (name, md5, test accuracy): digits-serve on stdout before its URL,
digits-predict on stderr (not with --json), and --help says which one they would load.

Exit status: 0 on success, 1 when any file (or the model) could not be used, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digits.app.artifacts import (
    APP_MODEL,
    GET_APP_MODEL,
    GET_PIPELINE_MODEL,
    PIPELINE_MODEL,
    default_model,
    read_model_info,
)
from digits.app.images import read_image, release_image_memory_when_freed, to_mnist
from digits.app.logs import limit_logging
from digits.app.predict import Predictor, prediction_json
from digits.app.server import LOOPBACK_HOSTS, PredictionServer
from digits.determinism import pin_cpu_kernels
from digits.errors import DigitsError

MODEL_HELP = (
    f"a .keras file, used as given. Default, relative to the current folder (a clone of the "
    f"project): {APP_MODEL.path} ({APP_MODEL.artifact}, {APP_MODEL.role}: {GET_APP_MODEL}) "
    f"when it exists, else {PIPELINE_MODEL.path} ({PIPELINE_MODEL.artifact}, "
    f"{PIPELINE_MODEL.role}: {GET_PIPELINE_MODEL}). Without a clone, fetch the model with "
    f"`dvc artifacts get REPO_URL {APP_MODEL.artifact}` and pass the downloaded model.keras here"
)


def package_version() -> str:
    """The installed digits package's version (pyproject.toml's, as pip recorded it)."""
    try:
        return importlib.metadata.version("digits")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (the digits package is not installed: run `make setup`)"


class ModelHelpParser(argparse.ArgumentParser):
    """An argument parser with --version ("digits-predict 0.1.0") whose --help ends with the
    model the command would load here (worked out only when the help is shown: it reads the
    model file to hash it)."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description)
        self.add_argument(
            "--version",
            action="version",
            version=f"{prog} {package_version()}",
            help="print the installed version and exit",
        )

    def format_help(self) -> str:
        self.epilog = default_model_summary()
        return super().format_help()


def default_model_summary() -> str:
    try:
        choice = default_model()
    except DigitsError as error:
        return f"Without --model, here: {error}."
    summary = f"Without --model, here: {read_model_info(choice.path).line()}."
    return f"{summary} {choice.note}" if choice.note else summary


def model_to_load(given: Path | None) -> Path:
    """--model as given (no fallback), else the default, whose note (if any) goes to stderr."""
    if given is not None:
        return given
    choice = default_model()
    if choice.note:
        print(choice.note, file=sys.stderr)
    return choice.path


def predict_main(argv: Sequence[str] | None = None) -> int:
    """Print the predicted digit, its probability and the top 3 for each image file."""
    parser = ModelHelpParser(
        prog="digits-predict",
        description="Read handwritten digits from PNG or JPEG files (any size; dark ink on "
        "light paper or light ink on dark).",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--model", type=Path, metavar="PATH", help=MODEL_HELP)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON array, an object per file"
    )
    args = parser.parse_args(argv)

    # Every file is read and checked before TensorFlow loads (2 s): bad files are reported fast.
    prepared: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for index, path in enumerate(args.images):
        try:
            prepared[index] = to_mnist(read_image(path), str(path))
        except DigitsError as error:
            errors[index] = str(error)
            print(f"error: {error}", file=sys.stderr)

    results: dict[int, dict] = {}
    if prepared:
        try:
            model = model_to_load(args.model)
            pin_cpu_kernels()
            predictor = Predictor.from_file(model)
        except DigitsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if not args.json:  # which model read them; stdout keeps the results only
            print(f"model: {read_model_info(model).line()}", file=sys.stderr)
        images = np.stack(list(prepared.values()))
        probabilities = predictor.probabilities(images)
        results = {
            index: prediction_json(row, image)
            for index, row, image in zip(prepared, probabilities, images, strict=True)
        }

    try:
        print_results(args, results, errors)
    except BrokenPipeError:
        # The reader stopped early (`digits-predict *.png | head -1`): stop quietly, and point
        # stdout at /dev/null so that Python's flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 1 if errors else 0


def print_results(
    args: argparse.Namespace, results: dict[int, dict], errors: dict[int, str]
) -> None:
    """Results in the order of the files given: one line each, or one JSON array."""
    if args.json:
        report = [
            {"file": str(path), **results[index]}
            if index in results
            else {"file": str(path), "error": errors[index]}
            for index, path in enumerate(args.images)
        ]
        print(json.dumps(report))
    else:
        for index, path in enumerate(args.images):
            if index in results:
                print(f"{path}: {format_result(results[index])}")
    sys.stdout.flush()  # a closed pipe shows here, not at exit


def format_result(result: dict) -> str:
    """'7 (98.1%)   top 3: 7 98.1%, 9 1.2%, 2 0.4%', then '   not a digit? WHY' if so."""
    top = ", ".join(f"{entry['digit']} {entry['probability']:.1%}" for entry in result["top3"])
    line = f"{result['digit']} ({result['probability']:.1%})   top 3: {top}"
    return f"{line}   not a digit? {result['not_a_digit']}" if result["not_a_digit"] else line


ALLOWED_HOSTS_VARIABLE = "DIGITS_ALLOWED_HOSTS"


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Serve the drawing page and its JSON API until interrupted."""
    parser = ModelHelpParser(
        prog="digits-serve",
        description="Serve a page where you draw a digit and watch the model read it.",
    )
    parser.add_argument("--model", type=Path, metavar="PATH", help=MODEL_HELP)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        default=os.environ.get(ALLOWED_HOSTS_VARIABLE),
        help="comma-separated names (or addresses) the server answers to in the Host header; "
        "other names get 400, which keeps web pages from other sites out (DNS rebinding). "
        "'*.example.org' allows its subdomains. Default: $" + ALLOWED_HOSTS_VARIABLE + ", "
        f"else {', '.join(LOOPBACK_HOSTS)} and --host",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="log no line per request and no warning (errors only)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:
        allowed_hosts = host_names(args.allowed_hosts, args.host)
    except ValueError as error:
        parser.error(str(error))

    release_image_memory_when_freed()
    try:
        model = model_to_load(args.model)
        pin_cpu_kernels()
        predictor = Predictor.from_file(model)  # once, before the first request
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model_info = read_model_info(model)
    # Warnings (malformed requests, odd images) once per kind and, unless --quiet, one line per
    # request (digits.app.logs).
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    limit_logging(args.quiet)
    try:
        # TensorFlow runs concurrent calls safely; a lock measured no faster at 4 clients.
        server = PredictionServer(
            predictor.probabilities,
            args.host,
            args.port,
            log_requests=not args.quiet,
            model_info=model_info.as_json(),
            allowed_hosts=allowed_hosts,
        )
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: other machines can reach this server; it "
            f"answers to the names {', '.join(allowed_hosts)} (--allowed-hosts)",
            file=sys.stderr,
        )
    print(f"model: {model_info.line()}")
    print(f"Serving the drawing page on {server.url} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()  # until Ctrl+C or SIGTERM
    finally:
        server.server_close()
    return 0


def host_names(given: str | None, host: str) -> list[str]:
    """--allowed-hosts (or its variable) as a list; by default the loopback names, and --host
    when it is one address or name (not 0.0.0.0 or ::, which stand for every address)."""
    if given is not None:
        names = [name.strip().lower() for name in given.split(",") if name.strip()]
        if not names:
            raise ValueError("--allowed-hosts needs at least one name, e.g. localhost")
        for name in names:
            if "*" in name[1:] or (name.startswith("*") and not name.startswith("*.")):
                raise ValueError(
                    f"--allowed-hosts: {name!r}: a wildcard only as '*.domain' (its "
                    f"subdomains) or '*' alone (any name)"
                )
        return names
    names = list(LOOPBACK_HOSTS)
    if host not in ("0.0.0.0", "::", ""):
        named = f"[{host.lower()}]" if ":" in host else host.lower()  # IPv6 in brackets
        if named not in names:
            names.append(named)
    return names


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
