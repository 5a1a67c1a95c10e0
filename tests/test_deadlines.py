"""digits.app.deadlines subclasses uvicorn's H11Protocol, which uvicorn does not document as an
extension point. These fail loudly, saying what to do, when another uvicorn is installed or
what the subclass relies on has changed. What the deadlines do is tested in test_server.py
(408s, idle connections closed, JSON 400s, on a real server)."""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from pathlib import Path

import h11
import pytest
import uvicorn
from packaging.requirements import Requirement
from packaging.version import Version
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from digits.app import deadlines

PROJECT = Path(__file__).parents[1]
WHAT_TO_DO = (
    f"digits/app/deadlines.py subclasses uvicorn's private H11Protocol, checked against uvicorn "
    f"{deadlines.CHECKED_UVICORN}; uvicorn {uvicorn.__version__} is installed. Read its "
    "uvicorn/protocols/http/h11_impl.py, adapt DeadlineProtocol (and its OVERRIDDEN, CALLED and "
    "ATTRIBUTES), run tests/test_server.py, then move CHECKED_UVICORN and the uvicorn pin in "
    "pyproject.toml to the new minor version."
)


def reliance_problems(protocol: type[H11Protocol], cycle: type) -> list[str]:
    """What DeadlineProtocol relies on that `protocol` (and its request cycle) lacks."""
    problems = []
    for name, parameters in deadlines.OVERRIDDEN.items():
        method = getattr(protocol, name, None)
        if not callable(method):
            problems.append(f"H11Protocol.{name} is gone")
        elif tuple(inspect.signature(method).parameters) != parameters:
            problems.append(
                f"H11Protocol.{name}{inspect.signature(method)} does not take {parameters}"
            )
    problems += [
        f"H11Protocol.{name} is gone"
        for name in deadlines.CALLED
        if not callable(getattr(protocol, name, None))
    ]
    calls = {  # a method -> what it must still do, in its source
        "data_received": "self._unset_keepalive_if_required()",
        "_unset_keepalive_if_required": "self.timeout_keep_alive_task.cancel()",
        "handle_events": "self.send_400_response(",
    }
    for name, call in calls.items():
        method = getattr(protocol, name, None)
        if method is not None and call not in inspect.getsource(method):
            problems.append(f"H11Protocol.{name} no longer calls {call}")
    config = uvicorn.Config(lambda scope, receive, send: None, lifespan="off", log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        made = protocol(config, ServerState(), {}, _loop=loop)
    except TypeError as error:
        return [*problems, f"H11Protocol(config, server_state, app_state, _loop): {error}"]
    finally:
        loop.close()
    problems += [
        f"H11Protocol has no attribute {name!r}"
        for name in deadlines.ATTRIBUTES
        if not hasattr(made, name)
    ]
    if not isinstance(getattr(made, "conn", None), h11.Connection):
        problems.append("H11Protocol.conn is not an h11.Connection")
    cycle_init = inspect.getsource(cycle.__init__)
    problems += [
        f"RequestResponseCycle has no attribute {name!r}"
        for name in deadlines.CYCLE_ATTRIBUTES
        if f"self.{name} =" not in cycle_init and f"self.{name}:" not in cycle_init
    ]
    return problems


def test_the_installed_uvicorn_is_the_minor_version_checked() -> None:
    installed = Version(uvicorn.__version__)
    assert f"{installed.major}.{installed.minor}" == deadlines.CHECKED_UVICORN, WHAT_TO_DO


def test_pyproject_allows_only_the_minor_version_checked() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    (pin,) = [
        Requirement(line).specifier
        for line in project["project"]["dependencies"]
        if Requirement(line).name == "uvicorn"
    ]
    major, minor = map(int, deadlines.CHECKED_UVICORN.split("."))
    assert pin.contains(f"{major}.{minor}.0"), pin
    assert pin.contains(f"{major}.{minor}.9"), pin
    for other in (f"{major}.{minor + 1}.0", f"{major}.{minor - 1}.9", f"{major + 1}.0.0"):
        assert not pin.contains(other), f"pyproject.toml's uvicorn{pin} allows {other}"


def test_h11_protocol_still_has_what_the_subclass_relies_on() -> None:
    problems = reliance_problems(H11Protocol, RequestResponseCycle)
    assert not problems, WHAT_TO_DO + "\n  " + "\n  ".join(problems)


def test_the_check_notices_a_changed_protocol() -> None:
    class Renamed(H11Protocol):
        data_received = None  # gone
        handle_events = None

        def send_400_response(self, message: str) -> None:  # another parameter name
            pass

        def __init__(self, config, server_state, app_state, _loop=None) -> None:
            super().__init__(config, server_state, app_state, _loop)
            del self.timeout_keep_alive_task

    class Cycle:
        def __init__(self) -> None:
            self.response_started = False

    problems = reliance_problems(Renamed, Cycle)

    assert "H11Protocol.data_received is gone" in problems
    assert "H11Protocol.handle_events is gone" in problems
    renamed = "H11Protocol.send_400_response(self, message"
    assert any(problem.startswith(renamed) for problem in problems), problems
    assert "H11Protocol has no attribute 'timeout_keep_alive_task'" in problems
    assert "RequestResponseCycle has no attribute 'response_complete'" in problems


@pytest.mark.parametrize("name", list(deadlines.OVERRIDDEN))
def test_deadline_protocol_overrides_with_the_same_parameters(name: str) -> None:
    ours = tuple(inspect.signature(getattr(deadlines.DeadlineProtocol, name)).parameters)
    assert ours == deadlines.OVERRIDDEN[name]
