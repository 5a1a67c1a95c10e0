"""digits.app.memory: freed memory given back to the system where the C library can. Its effect
on the server is measured in tests/test_server_memory.py."""

from __future__ import annotations

import platform

import pytest

from digits.app.memory import release_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_is_given_back_with_glibc() -> None:
    assert release_freed_memory() is True
