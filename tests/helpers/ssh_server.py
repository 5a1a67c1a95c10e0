"""A real OpenSSH server (Debian's openssh-server) on 127.0.0.1, for the tests of DVC's SSH remote.

`sshd -D -e` runs in the foreground as a child of the test, on a free high port, with a
throwaway host key and client key in its own folder: public-key login only, no PAM, and
`internal-sftp` (dvc-ssh speaks SFTP; without that line every push fails with "Can't create any
SFTP connections!"). Nothing is installed system-wide except the empty /run/sshd that sshd wants.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT_S = 10

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_key
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/client_key.pub
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (sshd forks a process per connection, and that one another)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # /proc/<pid>/stat: "pid (name) state ppid ..."; the name may hold spaces.
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


@dataclass
class SshServer:
    folder: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.folder / "client_key"

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def known_hosts_line(self) -> str:
        """The server's key as an OpenSSH known_hosts line (what `ssh-keyscan` would print)."""
        key_type, key = (self.folder / "host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def start(self) -> None:
        log = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 (the server keeps it)
        self.process = subprocess.Popen(
            [SSHD, "-f", self.folder / "sshd_config", "-D", "-e"],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"sshd exited:\n{(self.folder / 'sshd.log').read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
            ):
                if connection.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.1)
        pytest.fail(f"sshd did not answer on port {self.port} within {START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL the listener and every session it forked: connections drop mid-transfer."""
        if self.process is None:
            return
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


def ssh_keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dvc-test", "-f", path], check=True
    )


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    """An sshd on 127.0.0.1 that lets the current user in with `server.client_key`."""
    if not SSHD.is_file():
        pytest.fail("sshd not found: install it with `apt-get install openssh-server`")
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation folder
    server = SshServer(folder)
    ssh_keygen(folder / "host_key")
    ssh_keygen(server.client_key)
    (folder / "sshd_config").write_text(CONFIG.format(port=server.port, folder=folder))
    server.start()
    try:
        yield server
    finally:
        server.kill()
