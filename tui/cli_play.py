"""`stanch play …`: list, show, plan, approve, apply, verify, status and tick playbooks.

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
)


def _playbooks(args: argparse.Namespace) -> Any:
    from playbooks.model import PlaybookError, load_all

    try:
        return load_all(args.playbooks or ())
    except PlaybookError as e:
        raise UserError(str(e)) from None


def cmd_play_list(args: argparse.Namespace) -> int:
    pbs = _playbooks(args)
    if args.json:
        _print_json([{"id": p.id, "title": p.title, "incident": p.incident["name"], "file": p.file}
                     for p in pbs.values()])
        return EXIT_OK
    for p in pbs.values():
        print(f"{p.id:<28} {p.title}  [{p.incident['name']}]")
    return EXIT_OK


def cmd_play_show(args: argparse.Namespace) -> int:
    pbs = _playbooks(args)
    if args.id not in pbs:
        raise UserError(f"no playbook {args.id}; `stanch play list` shows them")
    doc = pbs[args.id].summary()
    if args.json:
        _print_json(doc)
        return EXIT_OK
    print(f"{doc['id']}: {doc['title']}\nmodeled on: {doc['incident']['name']}\nsource: {doc['incident']['source']}")
    for name, spec in doc["inputs"].items():
        print(f"input {name}{' (required)' if spec.get('required') else ''}: {spec.get('description', '')}")
    for n, st in enumerate(doc["steps"], 1):
        print(f"{n:>2}. [{st['kind']}] {st['title']}")
    return EXIT_OK


def _inputs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UserError(f"--input {item}: expected NAME=VALUE (e.g. seed=client:*:0oa123)")
        out[k.strip()] = v.strip()
    return out


def cmd_play_plan(args: argparse.Namespace) -> int:
    from playbooks import engine

    pbs = _playbooks(args)
    if args.id not in pbs:
        raise UserError(f"no playbook {args.id}; `stanch play list` shows them")
    with _open(args) as case:
        plan_id = engine.make_plan(case, pbs[args.id], _inputs(args.input))
        doc = engine.status(case, plan_id)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    _show_plan(doc, args.case)
    return EXIT_OK


def _show_plan(doc: dict[str, Any], case_path: str) -> None:
    from rich.table import Table

    from tui.safe_text import literal

    con = _console()
    con.print(literal(f"plan {doc['plan']}: {doc['title']}  hash {doc['hash'][:16]}  "
                      f"{'approved by ' + doc['approved_by'] if doc['approved'] else 'NOT approved'}", style="bold"))
    t = Table("#", "step", "kind", "connector", "verb", "target", "raw secret", "undo", "state")
    for i in doc["items"]:
        irreversible = i["kind"] == "act" and not i["reversible"]
        t.add_row(str(i["seq"]), literal(i["step"]), literal(i["kind"]),
                  literal(f"{i['connector_kind'] or ''}:{i['connector'] or '-'}" if i["kind"] == "act" else ""),
                  literal((i["verb"] or "") + (" (irreversible)" if irreversible else "")),
                  literal(i["preview"] or i["target"] or (i["text"] or "")[:60]),
                  "needed" if i["needs_raw"] else "", literal(i["undo"] and "recorded" or ""),
                  literal(i["state"] + (f": {i['note'][:48]}" if i["note"] else "")))
    con.print(t)
    con.print(literal(f"review, then: stanch play approve {case_path} {doc['plan']} --as NAME"))


def cmd_play_approve(args: argparse.Namespace) -> int:
    from casefile import plans

    with _open(args) as case:
        h = plans.approve(case, args.plan, args.as_name, args.hash)
    print(f"plan {args.plan} approved by {args.as_name} (hash {h[:16]})")
    return EXIT_OK


def _secrets_from(value: str | None) -> dict[str, str]:
    from playbooks.engine import read_secrets

    if value is None:
        return {}
    if value == "-":
        return read_secrets(sys.stdin.read().splitlines())
    path = Path(value)
    if not path.is_file():
        raise UserError(f"--secrets-from {value}: no such file; one raw credential per line, or - for stdin")
    return read_secrets(path.read_text(encoding="utf-8", errors="replace").splitlines())


def cmd_play_apply(args: argparse.Namespace) -> int:
    from playbooks import engine

    secrets = _secrets_from(args.secrets_from)
    opts = engine.RunOptions(concurrency=args.concurrency, verify=not args.no_verify,
                             read_only=bool(args.read_only or os.environ.get("STANCH_READ_ONLY") == "1"))
    with _open(args) as case:
        if not args.json and sys.stderr.isatty():
            from rich.progress import Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn(f"apply plan {args.plan}"), TextColumn("{task.fields[states]}"),
                          TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
                task = bar.add_task("apply", states="")

                def progress(states: dict[str, int]) -> None:
                    bar.update(task, states=", ".join(f"{n} {s}" for s, n in sorted(states.items())))

                opts.progress = progress
                doc = engine.apply(case, args.plan, secrets, opts)
        else:
            doc = engine.apply(case, args.plan, secrets, opts)
    secrets.clear()
    if args.json:
        _print_json(doc)
    else:
        _show_plan(doc, args.case)
    open_items = sum(n for s, n in doc["states"].items() if s not in ("verified", "done", "skipped"))
    return EXIT_OK if open_items == 0 else EXIT_CHECK


def cmd_play_verify(args: argparse.Namespace) -> int:
    from playbooks import engine

    secrets = _secrets_from(args.secrets_from)
    with _open(args) as case:
        doc = engine.verify(case, args.plan, secrets)
    secrets.clear()
    if args.json:
        _print_json(doc)
    else:
        _show_plan(doc, args.case)
    return EXIT_OK


def cmd_play_status(args: argparse.Namespace) -> int:
    from casefile import plans
    from playbooks import engine

    with _open(args) as case:
        doc: Any = engine.status(case, args.plan) if args.plan is not None else plans.plans(case)
    if args.json:
        _print_json(doc)
    elif args.plan is not None:
        _show_plan(doc, args.case)
    else:
        for p in doc:
            print(f"plan {p['plan']}: {p['playbook']} ({'approved by ' + p['approved_by'] if p['approved'] else 'not approved'}) "
                  + ", ".join(f"{n} {s}" for s, n in sorted(p["states"].items())))
    return EXIT_OK


def cmd_play_tick(args: argparse.Namespace) -> int:
    from playbooks import engine

    with _open(args) as case:
        engine.tick(case, args.plan, args.item, args.note)
    print(f"plan {args.plan} item {args.item} ticked")
    return EXIT_OK
