"""What every `stanch` command module shares: exit codes, the one-line user error, output helpers.

This module must not import Textual.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_CHECK = 0, 1, 2, 3
# The same as connectors.config.KINDS (a test holds them equal); spelled out so that building the parser
# does not import every vendor module.
CONNECTOR_KINDS = ("oauth", "vault", "gateway", "okta", "kong", "keycloak", "github", "aws", "entra", "salesforce",
                   "google")


class UserError(Exception):
    """One line for stderr, exit 1."""


def _scrub(text: object) -> str:
    """`text` with any credential in it replaced by its fingerprint marker (`[redacted sha256:…]`). Error messages
    quote what was typed, and a token pasted where a key, a format or a seed belonged must not land in the
    terminal's scrollback or a CI log."""
    from casefile.redact import Redactor

    return Redactor().text(str(text))


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _when(value: str | None, flag: str) -> str | None:
    from casefile.timeutil import TimeError, parse_when

    if value is None:
        return None
    try:
        return parse_when(value)
    except TimeError as e:
        raise UserError(f"{flag} {value}: {e}; use ISO 8601 (2025-08-17T11:15:00Z) or relative (24h, 7d)") from e


def _open(args: argparse.Namespace) -> Any:
    from casefile.case import open_case

    return open_case(args.case, analyst=args.analyst)


def _read_token(command: str) -> str:
    """One raw token from stdin (a hidden prompt on a terminal); never echoed, never stored."""
    if sys.stdin.isatty():
        import getpass

        raw = getpass.getpass("token (not echoed): ")
    else:
        raw = sys.stdin.read()
    if not raw.strip():
        raise UserError(f"no token on stdin; pipe one in: `pbpaste | stanch {command}`")
    return raw
