"""digits-serve's settings from flags and environment variables (the flag wins; a bad value is
one line and exit 2), its JSON access log, and the real process configured by variables alone:
listening where DIGITS_PORT says, ready after its warm-up, logging JSON lines."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from digits.app.cli import serve_main, settings_from_environment
from digits.app.logs import JsonLines
from tools.serving import DIGITS_SERVE

TIMEOUT_S = 30
VARIABLES = ("DIGITS_HOST", "DIGITS_PORT", "DIGITS_MODEL", "DIGITS_LOG_FORMAT")


def unset(**given: object) -> argparse.Namespace:
    """The parsed flags: those not given are None."""
    return argparse.Namespace(
        **{"host": None, "port": None, "model": None, "log_format": None, **given}
    )


def test_the_variables_stand_for_flags_not_given() -> None:
    args = unset()
    settings_from_environment(
        args,
        {
            "DIGITS_HOST": "0.0.0.0",
            "DIGITS_PORT": "8080",
            "DIGITS_MODEL": "/models/model.keras",
            "DIGITS_LOG_FORMAT": "json",
        },
    )
    assert (args.host, args.port, args.model, args.log_format) == (
        "0.0.0.0",
        8080,
        Path("/models/model.keras"),
        "json",
    )


def test_without_flags_or_variables_the_defaults_hold() -> None:
    args = unset()
    settings_from_environment(args, {})
    assert (args.host, args.port, args.model, args.log_format) == ("127.0.0.1", 8000, None, "text")


def test_a_flag_wins_over_its_variable_even_a_bad_one() -> None:
    args = unset(host="::1", port=0, model=Path("given.keras"), log_format="text")
    settings_from_environment(
        args,
        {
            "DIGITS_HOST": "",
            "DIGITS_PORT": "http",
            "DIGITS_MODEL": "",
            "DIGITS_LOG_FORMAT": "xml",
        },
    )
    assert (args.host, args.port, args.model, args.log_format) == (
        "::1",
        0,
        Path("given.keras"),
        "text",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DIGITS_PORT", "http", "$DIGITS_PORT is 'http': expected a port number 0..65535"),
        ("DIGITS_PORT", "70000", "$DIGITS_PORT is '70000': expected a port number 0..65535"),
        ("DIGITS_PORT", "-1", "$DIGITS_PORT is '-1': expected a port number 0..65535"),
        ("DIGITS_LOG_FORMAT", "xml", "$DIGITS_LOG_FORMAT is 'xml': expected text or json"),
        ("DIGITS_HOST", " ", "$DIGITS_HOST is set but empty: expected an address or a name"),
        ("DIGITS_MODEL", "", "$DIGITS_MODEL is set but empty: expected the path of a model"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_exit_2(
    variable: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as usage:
        serve_main([])
    assert usage.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert message in errors[0]


def test_a_bad_log_format_flag_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as usage:
        serve_main(["--log-format", "xml"])
    assert usage.value.code == 2
    assert "argument --log-format: invalid choice: 'xml'" in capsys.readouterr().err


def test_json_lines_give_an_access_line_its_fields_and_keep_it_on_one_line() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "h11_impl.py",
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/a\nFAKE: line\x1b[31m", "1.1", 404),
        None,
    )
    line = JsonLines().format(record)
    assert "\n" not in line
    assert "\x1b" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "uvicorn.access"
    assert entry["client"] == "127.0.0.1:5000"
    assert (entry["method"], entry["path"], entry["status"]) == (
        "GET",
        "/a\nFAKE: line\x1b[31m",
        404,
    )
    assert entry["message"] == '127.0.0.1:5000 - "GET /a\nFAKE: line\x1b[31m HTTP/1.1" 404'
    assert entry["time"].endswith("Z")


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_the_server_configured_by_variables_alone(model_file: Path, tmp_path: Path) -> None:
    """DIGITS_MODEL, DIGITS_PORT=0, DIGITS_HOST, DIGITS_LOG_FORMAT=json, no flag: it loads that
    model, is ready once warmed up, and logs each request as a JSON line."""
    log_path = tmp_path / "server.log"
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DIGITS_MODEL": str(model_file),
        "DIGITS_PORT": "0",
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_LOG_FORMAT": "json",
    }
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            DIGITS_SERVE, stdout=subprocess.PIPE, stderr=log, text=True, env=environment
        )
    try:
        said = ""
        while (line := process.stdout.readline()) and "http://" not in line:
            said += line
        assert "http://127.0.0.1:" in line, said + log_path.read_text()
        assert model_file.name in said
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        deadline = time.monotonic() + TIMEOUT_S
        while get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.05)
        assert get(port, "/healthz") == (200, b'{"status":"ok"}')
        assert get(port, "/no/such/page")[0] == 404
        time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT_S)
        process.stdout.close()
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert {"path": "/no/such/page", "status": 404, "method": "GET"}.items() <= access[-1].items()
    assert any(entry["path"] == "/readyz" and entry["status"] == 200 for entry in access)


def test_help_names_the_model_its_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "mounted.keras"
    path.write_bytes(b"any model")
    monkeypatch.setenv("DIGITS_MODEL", str(path))
    with pytest.raises(SystemExit):
        serve_main(["--help"])
    assert "Without --model, here ($DIGITS_MODEL): mounted.keras" in capsys.readouterr().out
    monkeypatch.setenv("DIGITS_MODEL", str(tmp_path / "none.keras"))
    with pytest.raises(SystemExit):
        serve_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Without --model, here: $DIGITS_MODEL: " in help_text
    assert "none.keras: not a usable Keras model" in help_text
