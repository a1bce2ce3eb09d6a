"""`stanch connector …` and `stanch pull`: connector settings, their keyring secrets, tests and pulls.

This module must not import Textual.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tui.cli_base import (
    EXIT_CHECK,
    EXIT_OK,
    UserError,
    _console,
    _open,
    _print_json,
    _when,
)


def _config_error(e: Exception) -> UserError:
    return UserError(str(e))


def _connector_file(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UserError(f"{flag} {value}: not a readable file")
    return str(path)


def cmd_connector_add(args: argparse.Namespace) -> int:
    from connectors.config import ConfigError, ConnectorSettings, add_connector

    if args.client_key and not args.client_cert:
        raise UserError("--client-key needs --client-cert")
    try:
        settings = ConnectorSettings(
            name=args.name, kind=args.kind, url=args.url,
            ca_bundle=_connector_file(args.ca_bundle, "--ca-bundle"),
            client_cert=_connector_file(args.client_cert, "--client-cert"),
            client_key=_connector_file(args.client_key, "--client-key"),
            client_id=args.client_id, connect_timeout=args.connect_timeout, read_timeout=args.read_timeout,
            concurrency=args.concurrency, rate_limit=args.rate_limit, secret_env=args.secret_env,
        ).validate()
    except ConfigError as e:
        raise _config_error(e) from None
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if args.secret_stdin and interactive:
        raise UserError("--secret-stdin reads a pipe: `printf %s \"$SECRET\" | stanch connector add ...`; "
                        "or drop it to be prompted without echo")
    if not args.secret_stdin and args.secret_env is None and not interactive:
        raise UserError("no terminal to prompt for the secret; pipe it with --secret-stdin, or name an "
                        "environment variable with --secret-env VAR")

    def read_secret() -> str:
        if args.secret_stdin:
            return sys.stdin.read()
        import getpass

        try:
            return getpass.getpass(f"secret for connector {args.name} (not echoed): ")
        except EOFError:
            raise UserError("no secret entered (end of input)") from None

    try:
        done = add_connector(settings, None if args.secret_env else read_secret)
    except ConfigError as e:
        raise _config_error(e) from None
    where = (f"read from ${args.secret_env} at run time, not stored" if args.secret_env
             else f"secret stored in the keyring ({done['keyring_backend']})")
    print(f"added connector {args.name} ({args.kind}, {args.url}) to {done['config_file']}; {where}")
    return EXIT_OK


def _secret_status(s: Any, keyring_problem: str | None) -> dict[str, Any]:
    from connectors.config import ConfigError, read_stored_secret

    if s.secret_env:
        return {"source": "env", "env_var": s.secret_env, "env_set": bool(os.environ.get(s.secret_env, "").strip()),
                "stored": None}
    if keyring_problem:
        return {"source": "keyring", "env_var": None, "env_set": None, "stored": None}
    try:
        stored = read_stored_secret(s.name) is not None
    except ConfigError:
        return {"source": "keyring", "env_var": None, "env_set": None, "stored": None}
    return {"source": "keyring", "env_var": None, "env_set": None, "stored": stored}


def cmd_connector_list(args: argparse.Namespace) -> int:
    from connectors.config import ConfigError, config_path, keyring_backend_name, load_all

    try:
        found = load_all()
    except ConfigError as e:
        raise _config_error(e) from None
    backend, problem = keyring_backend_name() if any(not s.secret_env for s in found.values()) else (None, None)
    rows = [{**s.as_dict(), "secret": _secret_status(s, problem)} for s in found.values()]
    if args.json:
        _print_json({"config_file": str(config_path()), "keyring": {"backend": backend, "problem": problem},
                     "connectors": rows})
        return EXIT_OK
    if not rows:
        print(f"no connectors yet ({config_path()}); add one with `stanch connector add NAME --kind KIND --url URL`")
        return EXIT_OK
    from rich.table import Table

    from tui.safe_text import literal

    def secret_text(sec: dict[str, Any]) -> str:
        if sec["source"] == "env":
            return f"env {sec['env_var']} ({'set' if sec['env_set'] else 'unset'})"
        return {True: "keyring: stored", False: "keyring: MISSING", None: "keyring: unknown"}[sec["stored"]]

    t = Table("name", "kind", "url", "secret", "client id", "ca bundle", title=str(config_path()))
    for r in rows:
        t.add_row(literal(r["name"]), literal(r["kind"]), literal(r["url"], 60), literal(secret_text(r["secret"])),
                  literal(r["client_id"] or ""), literal(r["ca_bundle"] or "", 40))
    _console().print(t)
    if problem:
        print(f"stanch: keyring: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_connector_remove(args: argparse.Namespace) -> int:
    from connectors.config import ConfigError, remove_connector

    try:
        done = remove_connector(args.name, keep_secret=args.keep_secret)
    except ConfigError as e:
        raise _config_error(e) from None
    secret = {True: "secret deleted from the keyring", False: "no secret was in the keyring",
              None: "keyring secret kept" if args.keep_secret else "no keyring secret"}[done["secret_deleted"]]
    print(f"removed connector {args.name} from {done['config_file']}; {secret}")
    return EXIT_OK


def cmd_connector_test(args: argparse.Namespace) -> int:
    from connectors.config import ConfigError, check_connector, check_env_name

    try:
        if args.secret_env:
            check_env_name(args.secret_env)
        result = check_connector(args.name, args.secret_env)
    except ConfigError as e:
        raise _config_error(e) from None
    if args.json:
        _print_json(result)
    else:
        for c in result["checks"]:
            mark = {True: "ok  ", False: "FAIL", None: "--  "}[c["ok"]]
            print(f"{mark}  {c['check']:<9} {c['detail']}")
        for k, v in (result["whoami"] or {}).items():
            print(f"      {k}: {v}")
    if not result["ok"]:
        first = next(c for c in result["checks"] if c["ok"] is False)
        detail = first["detail"].removeprefix(f"connector {args.name}: ")
        print(f"stanch: connector {args.name}: {first['check']} check failed: {detail}", file=sys.stderr)
        return EXIT_CHECK
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    import connectors  # noqa: F401  (registers the parsers)
    from connectors.config import ConfigError, check_env_name, load, secret_for
    from connectors.http import ConnectorError
    from connectors.pull import PullSummary, parse_filters, run_pull

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    try:
        filters = parse_filters(args.filter)
        if args.secret_env:
            check_env_name(args.secret_env)
        settings = load(args.connector)
        secret = secret_for(args.connector, args.secret_env, settings=settings)
    except ConfigError as e:
        raise _config_error(e) from None
    show_progress = not args.json and sys.stderr.isatty()
    with _open(args) as case:
        try:
            if show_progress:
                from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

                with Progress(SpinnerColumn(), TextColumn(f"pull {args.connector}"),
                              TextColumn("{task.fields[pages]:,} pages, {task.fields[n]:,} events"),
                              TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
                    task = bar.add_task("pull", pages=0, n=0)

                    def progress(s: PullSummary) -> None:
                        bar.update(task, pages=s.pages, n=s.events_seen)

                    summary = run_pull(case, settings, secret, since=since, until=until, reset=args.reset,
                                       progress=progress, filters=filters)
            else:
                summary = run_pull(case, settings, secret, since=since, until=until, reset=args.reset,
                                   filters=filters)
        except (ConfigError, ConnectorError) as e:
            raise UserError(f"{e}; pages stored before this stay in {args.case}, and the next pull resumes "
                            "after them") from None
    if args.json:
        _print_json(summary.as_dict())
        return EXIT_OK
    print(f"{args.connector} ({summary.kind}): {summary.pages:,} pages, {summary.events_added:,} events added "
          f"({summary.duplicates:,} already in the case), {summary.malformed} malformed, {summary.seconds:.2f}s")
    for p in [p for p in summary.problems if p["kind"] == "malformed"][:5]:
        print(f"  line {p['line']} of a page: {p['reason']}")
    for stream, cursor in summary.streams.items():
        print(f"  {stream}: " + ("next pull resumes from the saved cursor" if cursor else
                                 "no cursor (a full listing each pull)"))
    return EXIT_OK
