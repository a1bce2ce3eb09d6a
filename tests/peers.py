"""Helpers for tests that need a real peer or a system package.

Locally such a test skips with a message naming the apt package; under CI (`CI=true`) it fails,
so a CI machine that lacks the package cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need(condition: bool, what: str, install: str) -> None:
    """Skip (or fail under CI) unless `condition`; `install` names the package to install."""
    if condition:
        return
    msg = f"{what} is not available; install it with: {install}"
    if in_ci():
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


def need_binary(name: str, install: str) -> str:
    """Path of binary `name`, or skip/fail naming `install`."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.path.exists(p)), None
    )
    need(path is not None, f"`{name}`", install)
    assert path is not None
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
