"""Shared test setup: keyring never touches a real store; fake tokens are built at runtime."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


def fake_token(prefix: str = "stanch-FAKE-", n: int = 32, salt: str = "x") -> str:
    """An obviously fake token, built at runtime so no source line looks like a real credential."""
    body = (salt + "FAKE0123456789abcdefFAKE") * 4
    return prefix + body[:n]


@pytest.fixture
def case_path(tmp_path):
    return tmp_path / "test.stanch"
