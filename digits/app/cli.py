"""The installed commands: `digits-predict` (image files -> digits), `digits-serve` (drawing page).

    digits-predict IMAGE... [--model PATH] [--json]
    digits-serve [--model PATH] [--host 127.0.0.1] [--port 8000] [--allowed-hosts NAMES]
                 [--log-format text|json] [--quiet]
    digits-predict --version, digits-serve --version: the installed package's version

Without --model both load the app's model, data/app-model/recogniser/, or when it is missing the
pipeline's MLP, data/model/model.keras, with a note on stderr (digits.app.artifacts). Both say
which model they load (name, md5, test accuracy): digits-serve on stdout before its URL,
digits-predict on stderr (not with --json), and --help says which one they would load.

digits-predict reads, predicts and prints BATCH_SIZE files at a time (flat memory for any number
of files), and prints names escaped (`printable`). A model file is checked before Keras reads
it (digits.app.model_file).

digits-serve also takes its settings from environment variables (a container's way):
DIGITS_MODEL, DIGITS_HOST, DIGITS_PORT, DIGITS_ALLOWED_HOSTS, DIGITS_LOG_FORMAT; a flag given
wins over its variable. A variable that is set must hold a valid value (empty is not).

Exit status: 0 on success, 1 when any file (or the model) could not be used or the results could
not be written (standard output closed or full), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from digits.app.artifacts import (
    APP_FOLDER,
    APP_MODEL,
    GET_PIPELINE_MODEL,
    PIPELINE_MODEL,
    default_model,
    get_app_model,
    model_file,
    read_model_info,
)
from digits.app.images import read_image, release_image_memory_when_freed, to_mnist
from digits.app.logs import LOG_FORMATS, configure_logging
from digits.app.model_file import check_model_path
from digits.app.predict import OnnxPredictor, Predictor, prediction_json, predictor_for
from digits.app.server import LOOPBACK_HOSTS, PredictionServer
from digits.determinism import pin_cpu_kernels
from digits.errors import DigitsError


def model_help() -> str:
    return (
        "a .keras file, or a folder with a model.keras (and its model card, model.json), used "
        f"as given. Default, relative to the current folder (a clone of the project): "
        f"{APP_FOLDER} ({APP_MODEL.artifact}, {APP_MODEL.role}: {get_app_model()}) when it "
        f"exists, else {PIPELINE_MODEL.path} ({PIPELINE_MODEL.artifact}, {PIPELINE_MODEL.role}: "
        f"{GET_PIPELINE_MODEL}). Without a clone, fetch the model with `dvc artifacts get "
        f"REPO_URL {APP_MODEL.artifact}` and pass the downloaded folder here"
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
    model file to hash it). With `model_variable`, that variable, when set, names the model
    before the default does."""

    def __init__(self, prog: str, description: str, model_variable: str | None = None) -> None:
        super().__init__(prog=prog, description=description)
        self.model_variable = model_variable
        self.add_argument(
            "--version",
            action="version",
            version=f"{prog} {package_version()}",
            help="print the installed version and exit",
        )

    def format_help(self) -> str:
        named = os.environ.get(self.model_variable) if self.model_variable else None
        self.epilog = default_model_summary(self.model_variable if named else None)
        return super().format_help()


def default_model_summary(model_variable: str | None = None) -> str:
    """Which model the command loads here without --model: the one `model_variable` names
    (when given), else the default."""
    if model_variable is not None:
        path = Path(os.environ[model_variable].strip())
        try:
            check_model_path(path)
        except DigitsError as error:
            return printable(f"Without --model, here: ${model_variable}: {error}.")
        return printable(
            f"Without --model, here (${model_variable}): {read_model_info(path).line()}."
        )
    try:
        choice = default_model()
        check_model_path(choice.path)  # a regular file of bounded size before it is hashed
    except DigitsError as error:
        return printable(f"Without --model, here: {error}.")
    summary = printable(f"Without --model, here: {read_model_info(choice.path).line()}.")
    return f"{summary} {choice.note}" if choice.note else summary


def model_to_load(given: Path | None) -> Path:
    """--model as given (no fallback), else the default, whose note (if any) goes to stderr."""
    if given is not None:
        return model_file(given)
    choice = default_model()
    if choice.note:
        print(choice.note, file=sys.stderr)
    return choice.path


# Images read, predicted and printed at a time: memory stays flat whatever the number of files
# (for the app's CNN, a batch's first convolution outputs 256 x 28 x 28 x 32 floats: 26 MB).
BATCH_SIZE = 256


def predict_main(argv: Sequence[str] | None = None) -> int:
    """Print the predicted digit, its probability and the top 3 for each image file."""
    parser = ModelHelpParser(
        prog="digits-predict",
        description="Read handwritten digits from PNG or JPEG files (any size; dark ink on "
        f"light paper or light ink on dark), {BATCH_SIZE} files at a time, printing as it goes. "
        "Control characters and bytes that are not UTF-8 in file names are printed escaped "
        "(\\x1b, \\n, \\xff).",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--model", type=Path, metavar="PATH", help=model_help())
    parser.add_argument(
        "--json", action="store_true", help="print one JSON array, an object per file"
    )
    args = parser.parse_args(argv)
    if sys.stdout is None:  # `digits-predict x.png >&-`: Python has no stdout at all
        report_error("standard output is closed: nowhere to print the results")
        return 1

    output = JsonOutput() if args.json else TextOutput()
    predictor: Predictor | OnnxPredictor | None = None  # loaded for the first readable file
    failed = False
    try:
        for start in range(0, len(args.images), BATCH_SIZE):
            paths = args.images[start : start + BATCH_SIZE]
            # A batch's files are read and checked before TensorFlow loads (2 s): bad files are
            # reported fast, and when no file is readable the model is never loaded.
            images = read_images(paths)
            readable = [image for image in images if not isinstance(image, str)]
            failed = failed or len(readable) < len(images)
            if readable and predictor is None:
                predictor = load_predictor(args.model, say_which=not args.json)
                if predictor is None:
                    return 1
            rows = iter(predictor.probabilities(np.stack(readable)) if readable else ())
            entries = [
                image if isinstance(image, str) else prediction_json(next(rows), image)
                for image in images
            ]
            output.write(paths, entries, model_loaded=predictor is not None)
        output.close()
    except BrokenPipeError:  # the reader stopped early (`digits-predict *.png | head -1`)
        return stdout_lost()
    except OSError as error:  # `> /dev/full` (ENOSPC), an I/O error, ...
        report_error(f"cannot write the results to standard output: {error.strerror or error}")
        return stdout_lost()
    return 1 if failed else 0


def read_images(paths: Sequence[Path]) -> list[np.ndarray | str]:
    """Each file as a (28, 28) image in MNIST's conventions, or why it cannot be used (that
    message also goes to stderr at once)."""
    images: list[np.ndarray | str] = []
    for path in paths:
        try:
            images.append(to_mnist(read_image(path), str(path)))
        except DigitsError as error:
            images.append(str(error))
            report_error(str(error))
    return images


def load_predictor(given: Path | None, say_which: bool) -> Predictor | OnnxPredictor | None:
    """The model of --model (or the default), or None once its error is on stderr; with
    `say_which`, which model it is goes to stderr (stdout keeps the results only)."""
    try:
        model = model_to_load(given)
        pin_cpu_kernels()
        predictor = predictor_for(model)
    except DigitsError as error:
        report_error(str(error))
        return None
    if say_which:
        print(printable(f"model: {read_model_info(model).line()}"), file=sys.stderr)
    return predictor


class TextOutput:
    """One line per readable file, in the order given: 'NAME: 7 (98.1%)   top 3: ...'."""

    def write(self, paths: Sequence[Path], entries: list[dict | str], model_loaded: bool) -> None:
        lines = [
            f"{printable(str(path))}: {format_result(entry)}\n"
            for path, entry in zip(paths, entries, strict=True)
            if isinstance(entry, dict)
        ]
        write_stdout("".join(lines))

    def close(self) -> None:
        pass


class JsonOutput:
    """One JSON array, an object per file in the order given ({"file", "digit", ...} or
    {"file", "error"}), written as it goes once the model has loaded; the same text as
    json.dumps of the whole list. ASCII only: names reach the terminal escaped."""

    def __init__(self) -> None:
        self.held: list[str] = []  # errors before the model loaded: nothing on stdout if it fails
        self.started = False

    def write(self, paths: Sequence[Path], entries: list[dict | str], model_loaded: bool) -> None:
        self.held += [
            json.dumps({"file": str(path), **entry})
            if isinstance(entry, dict)
            else json.dumps({"file": str(path), "error": entry})
            for path, entry in zip(paths, entries, strict=True)
        ]
        if model_loaded and self.held:
            write_stdout((", " if self.started else "[") + ", ".join(self.held))
            self.started, self.held = True, []

    def close(self) -> None:
        if self.started:
            write_stdout("]\n")
        else:
            write_stdout("[" + ", ".join(self.held) + "]\n")


def write_stdout(text: str) -> None:
    """Written and flushed: a full disk or a closed pipe shows here, not at exit."""
    sys.stdout.write(text)
    sys.stdout.flush()


def stdout_lost() -> int:
    """Exit status 1, with stdout pointed at /dev/null so that Python's flush at exit does not
    complain again about what is still buffered."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def report_error(message: str) -> None:
    print(f"error: {printable(message)}", file=sys.stderr)


def printable(text: str) -> str:
    """`text` safe to print to a terminal: what str.isprintable() refuses (control characters
    such as ESC and newline, bidirectional overrides, ...) as Python escapes ('\\x1b', '\\n',
    '\\u202e'), and the bytes of a file name that are not UTF-8 (which Python holds as
    surrogates) as '\\xNN'. Printable text comes back unchanged."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


def format_result(result: dict) -> str:
    """'7 (98.1%)   top 3: 7 98.1%, 9 1.2%, 2 0.4%', then '   not a digit? WHY' if so."""
    top = ", ".join(f"{entry['digit']} {entry['probability']:.1%}" for entry in result["top3"])
    line = f"{result['digit']} ({result['probability']:.1%})   top 3: {top}"
    return f"{line}   not a digit? {result['not_a_digit']}" if result["not_a_digit"] else line


ALLOWED_HOSTS_VARIABLE = "DIGITS_ALLOWED_HOSTS"
HOST_VARIABLE = "DIGITS_HOST"
PORT_VARIABLE = "DIGITS_PORT"
MODEL_VARIABLE = "DIGITS_MODEL"
LOG_FORMAT_VARIABLE = "DIGITS_LOG_FORMAT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Serve the drawing page and its JSON API until interrupted."""
    parser = ModelHelpParser(
        prog="digits-serve",
        description="Serve a page where you draw a digit and watch the model read it. Each "
        "setting may also come from its environment variable, named in its help; the flag "
        "wins.",
        model_variable=MODEL_VARIABLE,
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help=f"{model_help()}. Without --model: ${MODEL_VARIABLE} when it is set",
    )
    parser.add_argument(
        "--host", help=f"address to listen on (default: ${HOST_VARIABLE}, else {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"0 picks a free port (default: ${PORT_VARIABLE}, else {DEFAULT_PORT})",
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
        "--log-format",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object per line for a log collector (default: "
        f"${LOG_FORMAT_VARIABLE}, else text)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="log no line per request and no warning (errors only)",
    )
    args = parser.parse_args(argv)
    try:
        settings_from_environment(args, os.environ)
        allowed_hosts = host_names(args.allowed_hosts, args.host)
    except ValueError as error:
        parser.error(str(error))

    release_image_memory_when_freed()
    try:
        model = model_to_load(args.model)
        pin_cpu_kernels()
        predictor = predictor_for(model)  # once, before the first request
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model_info = read_model_info(model)
    # Warnings (malformed requests, odd images) once per kind and, unless --quiet, one line per
    # request (digits.app.logs).
    configure_logging(args.log_format, args.quiet)
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
    server.warm_up_in_background()  # GET /readyz: 503 until the model has answered once
    try:
        server.serve_forever()  # until Ctrl+C or SIGTERM
    finally:
        server.server_close()
    return 0


def settings_from_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill in the settings not given as flags from their variables, else the defaults; a
    ValueError names the flag or variable that is wrong and what it takes."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    if args.host is None:
        args.host = _variable(environ, HOST_VARIABLE, "an address or a name") or DEFAULT_HOST
    if args.port is None:
        text = _variable(environ, PORT_VARIABLE, "a port number 0..65535")
        args.port = DEFAULT_PORT if text is None else _port(text)
    if args.model is None:
        text = _variable(environ, MODEL_VARIABLE, "the path of a model file")
        args.model = None if text is None else Path(text)
    if args.log_format is None:
        text = _variable(environ, LOG_FORMAT_VARIABLE, " or ".join(LOG_FORMATS))
        if text is not None and text not in LOG_FORMATS:
            raise ValueError(
                f"${LOG_FORMAT_VARIABLE} is {text!r}: expected {' or '.join(LOG_FORMATS)}"
            )
        args.log_format = text or LOG_FORMATS[0]


def _variable(environ: Mapping[str, str], name: str, expected: str) -> str | None:
    """The variable's value, None when it is not set; set but empty is an error."""
    value = environ.get(name)
    if value is not None and not value.strip():
        raise ValueError(f"${name} is set but empty: expected {expected}, or unset it")
    return None if value is None else value.strip()


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"${PORT_VARIABLE} is {text!r}: expected a port number 0..65535")
    return int(text)


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
