"""Hand-off commands: `stanch export`, the Shared Signals SETs (`push-sets`, `sets-key`, `sets-auth`) and `stanch merge`.

This module must not import Textual.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.cli_base import (
    EXIT_CHECK,
    EXIT_OK,
    UserError,
    _open,
    _print_json,
    _read_token,
    _when,
)


def cmd_export(args: argparse.Namespace) -> int:
    from casefile.export import export
    from casefile.export_graph import GRAPH_FORMATS

    if args.format == "sets":
        from connectors import ssf
        from connectors.config import ConfigError

        with _open(args) as case:
            try:
                n = ssf.export_sets(case, args.output, args.issuer, args.audience or ())
            except ConfigError as e:
                raise UserError(str(e)) from None
        print(f"wrote {n:,} SETs (and the JWKS that verifies them) to {args.output}")
        return EXIT_OK
    graph: dict[str, Any] = {}
    if args.format in (*GRAPH_FORMATS, "bundle"):
        import connectors  # noqa: F401  (revokers: which connector can act on each credential)
    if args.format in GRAPH_FORMATS:

        raw = _read_token(f"export {args.case} --seed -") if args.seed == "-" else None
        graph = {"seed": args.seed, "raw_token": raw, "depth": args.depth, "since": _when(args.since, "--since"),
                 "until": _when(args.until, "--until"), "as_of": _when(args.as_of, "--as-of"),
                 "max_seeds": args.max_seeds}
    elif args.seed is not None:
        raise UserError(f"--seed applies to the graph formats ({', '.join(GRAPH_FORMATS)}), not {args.format}")
    with _open(args) as case:
        try:
            n = export(case, args.format, args.output, **graph)
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) else str(e)
            raise UserError(f"{args.output}: cannot write ({why}); choose another -o path") from None
    what = (f"a bundle of the case and {n - 1} exports, with a manifest" if args.format == "bundle" else
            f"{n:,} events" if args.format.startswith("timesketch") else
            f"{n:,} revocation items" if args.format == "revocation-set" else
            f"{n:,} nodes" if args.format in GRAPH_FORMATS else "the report")
    print(f"wrote {what} to {args.output}")
    return EXIT_OK


def cmd_push_sets(args: argparse.Namespace) -> int:
    from connectors import ssf
    from connectors.config import ConfigError

    with _open(args) as case:
        try:
            s = ssf.push_sets(case, args.to, issuer=args.issuer, audience=args.audience, auth_secret_name=args.auth,
                              auth_env=args.auth_env, force=args.force, verify=args.ca_bundle or True)
        except ConfigError as e:
            raise UserError(str(e)) from None
    if args.json:
        _print_json(s.as_dict())
    else:
        print(f"{s.receiver}: {s.total} SETs: {s.delivered} delivered, {s.already} already delivered, "
              f"{s.rejected} rejected, {s.failed} failed, {s.not_sent} not sent")
    for p in s.problems:
        print(f"stanch: {p}", file=sys.stderr)
    return EXIT_OK if s.ok else EXIT_CHECK


def cmd_sets_key(args: argparse.Namespace) -> int:
    import getpass

    from connectors import ssf
    from connectors.config import ConfigError

    try:
        if args.key_command == "show":
            _print_json(ssf.public_jwks())
        elif args.key_command == "export":
            pw = getpass.getpass("passphrase for the exported key (not echoed): ")
            if getpass.getpass("again: ") != pw:
                raise UserError("the passphrases differ; nothing was written")
            info_ = ssf.export_key(args.file, pw)
            print(f"wrote the SET signing key {info_.get('kid', '')} to {args.file} (encrypted, 0600)")
        else:
            pw = getpass.getpass("passphrase of the key file (not echoed): ")
            info_ = ssf.import_key(args.file, pw, replace=args.replace)
            print(f"imported the SET signing key {info_.get('kid', '')} into the keyring")
    except ConfigError as e:
        raise UserError(str(e)) from None
    return EXIT_OK


def cmd_sets_auth(args: argparse.Namespace) -> int:
    import getpass

    from connectors import ssf
    from connectors.config import ConfigError

    try:
        if args.auth_command == "add":
            value = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass(
                f"credential for receiver {args.name} (not echoed): ")
            if not value:
                raise UserError("no credential given; nothing was stored")
            ssf.store_receiver_secret(args.name, value)
            print(f"stored the receiver credential {args.name} in the keyring")
        elif not ssf.delete_receiver_secret(args.name):
            raise UserError(f"no receiver credential {args.name} in the keyring")
        else:
            print(f"removed the receiver credential {args.name}")
    except ConfigError as e:
        raise UserError(str(e)) from None
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from casefile.merge import merge

    with _open(args) as case:
        s = merge(case, args.other)
    if args.json:
        _print_json(s.as_dict())
    elif not s.changed:
        print(f"nothing to merge: {args.case} already holds everything in {args.other}")
    else:
        print(f"merged {args.other} into {args.case}: " + ", ".join(f"{n:,} {t}" for t, n in s.added.items() if n))
        for c in s.status_conflicts:
            print(f"  credential {c['credential']}: status {c['here']} here, {c['other']} in {args.other} (kept "
                  f"{c['here']})")
    return EXIT_OK
