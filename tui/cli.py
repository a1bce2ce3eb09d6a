"""The `stanch` command line. A stable contract: exit 0 ok, 1 user error, 2 usage, 3 a check failed.

This module must not import Textual: the console is imported only when it opens.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson

from tui.cli_base import (
    CONNECTOR_KINDS,
    EXIT_CHECK,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER,
    UserError,
    _console,
    _open,
    _print_json,
    _read_token,
    _scrub,
    _when,
)
from tui.cli_connectors import (
    cmd_connector_add,
    cmd_connector_list,
    cmd_connector_remove,
    cmd_connector_test,
    cmd_pull,
)
from tui.cli_handoff import cmd_export, cmd_merge, cmd_push_sets, cmd_sets_auth, cmd_sets_key
from tui.cli_play import (
    cmd_play_apply,
    cmd_play_approve,
    cmd_play_list,
    cmd_play_plan,
    cmd_play_show,
    cmd_play_status,
    cmd_play_tick,
    cmd_play_verify,
)


def cmd_new(args: argparse.Namespace) -> int:
    from casefile.case import create_case

    with create_case(args.case, title=args.title, analyst=args.analyst) as case:
        print(f"created {case.path} (schema v{case.schema_version})")
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    import connectors  # noqa: F401  (registers the parsers)
    from casefile.ingest import ingest

    show_progress = not args.json and sys.stderr.isatty()
    with _open(args) as case:
        if show_progress:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[n]:,} events"),
                          TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
                task = bar.add_task("ingest", n=0)

                def progress(name: str, n: int) -> None:
                    bar.update(task, description=Path(name).name, n=n)

                summaries = ingest(case, args.paths, args.format, progress, geoip=args.geoip or ())
        else:
            summaries = ingest(case, args.paths, args.format, geoip=args.geoip or ())
    failed = [s for s in summaries if s.error]
    if args.json:
        _print_json({"files": [s.as_dict() for s in summaries],
                     "totals": {k: sum(getattr(s, k) for s in summaries)
                                for k in ("events_seen", "events_added", "duplicates", "malformed", "skipped")}})
    else:
        for s in summaries:
            if s.error:
                continue
            if s.already_ingested:
                print(f"{s.path}: already ingested (source {s.source_id}, {s.format}); nothing added")
                continue
            line = (f"{s.path}: {s.format}: {s.events_added:,} events added ({s.duplicates:,} duplicates), "
                    f"{s.malformed} malformed, {s.skipped} skipped lines, {s.seconds:.2f}s")
            print(line)
            bad = [p for p in s.problems if p["kind"] == "malformed"][:5]
            for p in bad:
                print(f"  {s.path}:{p['line']}: {p['reason']}")
            if s.malformed > len(bad):
                print(f"  … {s.malformed - len(bad)} more malformed lines (stanch info --json {args.case})")
    for s in failed:
        print(f"stanch: {_scrub(s.error)}", file=sys.stderr)
    return EXIT_USER if failed else EXIT_OK


def cmd_ingest_data(args: argparse.Namespace) -> int:
    from casefile.data import ingest_data

    with _open(args) as case:
        summaries = ingest_data(case, args.paths, args.object_type)
    if args.json:
        _print_json({"files": [s.as_dict() for s in summaries]})
        return EXIT_OK
    for s in summaries:
        if s.already_ingested:
            print(f"{s.path}: already ingested (source {s.source_id}); nothing added")
            continue
        if s.format is None:  # unreadable from its first bytes: only the error
            print(f"stanch: {_scrub(s.error)}", file=sys.stderr)
            continue
        print(f"{s.path}: {s.format}: {s.records:,} records, {s.exposures} credentials found "
              f"({s.credentials} new), {s.unreadable} unreadable, {s.seconds:.2f}s")
        for p in s.problems[:5]:
            print(f"  {s.path}:{p['line']}: {p['reason']}")
        if s.error:
            print(f"stanch: {_scrub(s.error)}", file=sys.stderr)
    if any(s.exposures for s in summaries):
        print(f"the blast radius now includes them where a compromised credential read their records: "
              f"stanch blast {args.case} SEED")
    return EXIT_USER if any(s.error for s in summaries) else EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from casefile.query import info

    with _open(args) as case:
        doc = info(case)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    from rich.table import Table

    from tui.safe_text import literal

    con = _console()
    con.print(literal(f"{doc['title']}  ({doc['path']}, schema v{doc['schema_version']})", style="bold"))
    w = doc["window"]
    con.print(literal(f"incident window: {w['start'] or '-'} → {w['end'] or '-'}"))
    con.print(literal("  ".join(f"{k}: {v:,}" for k, v in doc["counts"].items())))
    t = Table("id", "format", "status", "events", "malformed", "skipped", "path", title="sources")
    for s in doc["sources"]:
        t.add_row(str(s["id"]), literal(s["format"]), literal(s["status"]), f"{s['events_added']:,}",
                  str(s["malformed"]), str(s["skipped"]), literal(s["path"]))
    con.print(t)
    for pl in doc["pulls"]:
        con.print(literal(f"pull {pl['connector']}/{pl['stream']}: cursor saved {pl['updated_at']} "
                          f"(after source {pl['source']})"))
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    from casefile.query import events

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    with _open(args) as case:
        rows = events(case, args.credential, since, until, args.limit)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    from rich.table import Table

    from tui.safe_text import literal

    t = Table("time", "vendor", "action", "outcome", "cred", "principal", "src_ip", "resource", "status")
    for r in rows:
        t.add_row(literal(r["time"]), literal(r["vendor"]), literal(r["action"]), literal(r["outcome"]),
                  literal(r["credential_id"] or ""), literal(r["principal"] or "", 30), literal(r["src_ip"] or ""),
                  literal(r["resource"] or "", 60), literal(r["status"] if r["status"] is not None else ""))
    _console().print(t)
    return EXIT_OK


def cmd_credentials(args: argparse.Namespace) -> int:
    from casefile.query import credentials

    with _open(args) as case:
        rows = credentials(case)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    from rich.table import Table

    from tui.safe_text import literal

    t = Table("id", "kind", "preview", "client", "principal", "binding", "status", "events", "last used", "key")
    for r in rows:
        t.add_row(str(r["id"]), literal(r["kind"]), literal(r["preview"] or ""), literal(r["client"] or "", 30),
                  literal(r["principal"] or "", 30), literal(r["binding"] or "?"), literal(r["status"]),
                  f"{r['events']:,}", literal(r["last_used"] or ""), literal(r["keys"][0] if r["keys"] else "", 40))
    _console().print(t)
    return EXIT_OK


def cmd_note(args: argparse.Namespace) -> int:
    with _open(args) as case:
        rowid = case.add_note(args.text, args.on)
    print(f"note {rowid} added")
    return EXIT_OK


def cmd_case_set(args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    start, end = _when(args.window_start, "--window-start"), _when(args.window_end, "--window-end")
    if start:
        values["window_start"] = start
    if end:
        values["window_end"] = end
    with _open(args) as case:
        if start and end is None and case.meta().get("window_end") and case.meta()["window_end"] < start:
            raise UserError("--window-start is after the window's end; set --window-end too")
        if start and end and end < start:
            raise UserError(f"--window-end {end} is before --window-start {start}; swap them")
        if args.policy:
            policy = case.policy()
            for item in args.policy:
                k, sep, v = item.partition("=")
                if not sep or not k.strip():
                    raise UserError(f"--policy {item}: expected key=value (for example ttl_max=3600)")
                policy[k.strip()] = _policy_value(v.strip())
            values["policy"] = orjson.dumps(policy, option=orjson.OPT_SORT_KEYS).decode()
        if args.title:
            values["title"] = args.title
        if not values:
            raise UserError("nothing to set; give --window-start, --window-end, --policy key=value or --title")
        case.set_meta(values)
    print("set " + ", ".join(sorted(values)))
    return EXIT_OK


def _policy_value(v: str) -> Any:
    try:
        return orjson.loads(v)
    except orjson.JSONDecodeError:
        return v


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from casefile.query import fingerprint_token

    raw = _read_token("fingerprint")
    doc = fingerprint_token(raw)
    del raw
    if args.json:
        _print_json(doc)
    else:
        print(f"preview: {doc['preview'] or '(too short to preview)'}   kind: {doc['kind']}")
        for k in doc["keys"]:
            print(k)
    return EXIT_OK


def cmd_blast(args: argparse.Namespace) -> int:
    import connectors  # noqa: F401  (registers the revokers and object readers)
    from casefile.blast import blast

    raw = _read_token("blast CASE -") if args.seed == "-" else None
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    as_of = _when(args.as_of, "--as-of")
    with _open(args) as case:
        doc = blast(case, args.seed, raw_token=raw, depth=args.depth, since=since, until=until, as_of=as_of)
    del raw
    if args.json:
        _print_json(doc)
        return EXIT_OK
    _show_blast(doc, args.case)
    return EXIT_OK


def _show_blast(doc: dict[str, Any], case_path: str) -> None:
    from rich.table import Table

    from tui.safe_text import literal

    con = _console()
    seed = doc["seed"]
    creds = doc["credentials"]
    roles: dict[str, int] = {}
    for c in creds:
        roles[c["role"]] = roles.get(c["role"], 0) + 1
    con.print(literal(f"blast radius of {seed['input']} ({seed['kind']}): " +
                      ", ".join(f"{n} {r}" for r, n in roles.items()), style="bold"))
    st = doc["static"]
    for app in st["apps"]:
        con.print(literal(f"app {app['client']}  issuer {', '.join(app['issuers']) or '-'}  principals "
                          f"{', '.join(app['principals']) or '-'}  scopes {' '.join(app['scopes']) or '-'}  "
                          f"other credentials of this client: {app['other_credentials']}"))
    con.print(literal("sender binding: " + ", ".join(f"{k} {v}" for k, v in st["bindings"].items())))
    rt = doc["runtime"]
    t = rt["totals"]
    calls = Table("count", "fail", "vendor", "method", "resource", "first", "last", "IPs", "UAs",
                  title=f"runtime reach: {t['events']:,} events from {t['ips']} addresses, {t['user_agents']} user agents")
    for g in rt["calls"][:25]:
        calls.add_row(f"{g['count']:,}", str(g["failures"]), literal(g["vendor"]), literal(g["method"] or ""),
                      literal(g["resource"]), literal(g["first"][:19]), literal(g["last"][:19]), str(len(g["ips"])),
                      str(len(g["user_agents"])))
    con.print(calls)
    if len(rt["calls"]) > 25:
        con.print(f"… {len(rt['calls']) - 25} more resource patterns (--json)")
    for label, key, name in (("objects read", "objects_read", "object"), ("secrets read", "secrets_read", "path"),
                             ("exports", "exports", "resource")):
        if rt[key]:
            con.print(literal(f"{label}: " + ", ".join(f"{g[name]} ({g['count']:,})" for g in rt[key][:12])))
    minted = doc["lineage"]
    if minted:
        inferred = sum(1 for e in minted if e.get("inferred"))
        con.print(literal(f"lineage: {len(minted)} mint edges ({inferred} inferred from the token endpoint), depth "
                          f"{max((c['depth'] for c in creds), default=0)}"))
    rs = doc["revocation_set"]
    rt_table = Table("#", "what", "connector", "verb", "target", "raw secret", "why", title=f"revocation set (as of "
                     f"{rs['as_of'][:19]}; not listed: {rs['not_listed']['expired']} expired, "
                     f"{rs['not_listed']['revoked']} already proven revoked)")
    for i, item in enumerate(rs["items"], 1):
        what = item.get("preview") or (item.get("keys") or [item.get("client") or "?"])[0]
        rt_table.add_row(str(i), literal(f"{item['kind']} {what}"), literal(item.get("connector") or "-"),
                         literal(item.get("verb") or "-"), literal(str(item.get("target") or "-")),
                         "needed" if item["needs_raw_secret"] else "no", literal(item["reason"]))
    con.print(rt_table)
    con.print(literal(f"evidence: `stanch events {case_path} --credential <key>`; everything: --json"))


def cmd_findings(args: argparse.Namespace) -> int:
    import connectors  # noqa: F401  (registers the vendor rule folders)
    from casefile import findings

    if args.list_rules:
        rules = findings.load_rules(args.rules or ())
        if args.json:
            _print_json([{"id": r.id, "title": r.title, "severity": r.severity, "kind": r.kind, "nhi": r.nhi,
                          "csf": r.csf, "attack": r.attack, "file": r.file} for r in rules])
        else:
            for r in rules:
                print(f"{r.id:<40} {r.severity:<8} {r.kind:<12} {r.title}")
        return EXIT_OK
    if not args.case:
        raise UserError("stanch findings: give the case file (stanch findings CASE), or --list-rules")
    with _open(args) as case:
        if args.show:
            doc = findings.latest(case)
            if doc is None:
                raise UserError(f"no findings yet in {args.case}; run `stanch findings {args.case}`")
        else:
            extra: list[Any] = []
            if args.sigma:
                from casefile import sigma

                named = {"stanch": sigma.BUILTIN_DIR / "stanch_salesloft_drift.yml",
                         "sigmahq": sigma.BUILTIN_DIR / "sigmahq"}
                paths = [named.get(d, Path(d)) for d in args.sigma]
                for p in paths:
                    if not p.exists():
                        raise UserError(f"--sigma {p}: no such folder or rule file")
                placeholders = {}
                for item in args.sigma_var or ():
                    name, sep, values = item.partition("=")
                    if not sep or not name:
                        raise UserError(f"--sigma-var {item}: expected NAME=value1,value2")
                    placeholders[name] = [v for v in values.split(",") if v]
                extra, problems = sigma.run_sigma(case, paths, placeholders=placeholders or None)
                for problem in problems:
                    print(f"stanch: sigma: {problem}", file=sys.stderr)
            doc = findings.run(case, rule_dirs=args.rules or (), ioc_files=args.iocs or (), only=args.rule or (),
                               extra=extra)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    _show_findings(doc, args.case)
    return EXIT_OK


def _show_findings(doc: dict[str, Any], case_path: str) -> None:
    from rich.table import Table

    from tui.safe_text import literal

    con = _console()
    found = doc["findings"]
    by_sev: dict[str, int] = {}
    for f in found:
        by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
    sup = sum(doc.get("suppressed", {}).values())
    con.print(literal(f"findings run {doc['run']}: {len(found)} findings (" +
                      ", ".join(f"{n} {s}" for s, n in by_sev.items()) + f") from {doc['rules']} rules in "
                      f"{doc['seconds']:.2f}s; {sup} hits suppressed as routine (seen before the incident window)",
                      style="bold"))
    t = Table("sev", "rule", "subject", "count", "summary", "NHI / CSF / ATT&CK")
    for f in found:
        rule = f.get("rule_id")
        ids = " ".join([*f.get("nhi", []), *f.get("csf", []), *f.get("attack", [])])
        t.add_row(literal(f["severity"]), literal(rule), literal(f.get("subject") or "-"), str(f["count"]),
                  literal(f["summary"][:160]), literal(ids))
    con.print(t)
    con.print(literal(f"evidence: `stanch findings {case_path} --show --json` lists each finding's event ids"))


# -- playbooks ----------------------------------------------------------------------------------

def cmd_formats(args: argparse.Namespace) -> int:
    import connectors  # noqa: F401
    from casefile.formats import all_formats

    fmts = [{"name": f.name, "vendor": f.vendor, "version": f.version, "description": f.description}
            for f in all_formats()]
    if args.json:
        _print_json(fmts)
    else:
        for f in fmts:
            print(f"{f['name']:<20} {f['vendor']:<8} {f['description']}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from casefile.audit import verify
    from casefile.bundle import check_bundle, is_bundle

    if is_bundle(args.case):
        chk = check_bundle(args.case, expected_head=args.head)
        if args.json:
            _print_json({"ok": chk.ok, "chain_head": chk.head, "source_head": chk.source_head,
                         "entries": chk.entries, "manifest_sha256": chk.manifest_sha256, "problems": chk.problems})
        elif chk.problems:
            for line in chk.problems:
                print(f"stanch: {line}", file=sys.stderr)
        else:
            print(f"ok: bundle intact; {chk.entries} audit entries; chain head {chk.head} (case head when bundled "
                  f"{chk.source_head}); manifest sha256 {chk.manifest_sha256}")
        return EXIT_CHECK if chk.problems else EXIT_OK
    with _open(args) as case:
        head, entries, problems = verify(case.conn)
    if args.json:
        _print_json({"ok": not problems, "chain_head": head, "entries": entries,
                     "problems": [{"table": p.table, "row": p.row, "what": p.what} for p in problems]})
    elif problems:
        for p in problems:
            print(f"stanch: {args.case}: {p}", file=sys.stderr)
    else:
        print(f"ok: {entries} audit entries intact; chain head {head}")
    return EXIT_CHECK if problems else EXIT_OK


def cmd_open(args: argparse.Namespace) -> int:
    _open(args).close()  # fail here, with a one-line error, before the console starts
    from tui.app import run_console

    run_console(args.case, read_only=args.read_only, analyst=args.analyst, playbook_dirs=args.playbooks or ())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from tui.demo import build_demo

    path = build_demo(args.case, events=args.events, seed=args.seed, analyst=args.analyst,
                      quiet=args.no_tui is False and sys.stdout.isatty())
    if args.no_tui or not (sys.stdout.isatty() and sys.stdin.isatty()):
        print(f"demo case ready: {path}")
        print(f"  stanch info {path}    stanch credentials {path}    stanch events {path} --limit 20")
        return EXIT_OK
    from tui.app import run_console

    run_console(str(path), analyst=args.analyst)
    return EXIT_OK


# -- connectors --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"stanch: {_scrub(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stanch", description="Contain a stolen token: case file, blast radius, revocation, proof.")
    p.add_argument("--analyst", metavar="NAME", help="who is acting (recorded in the audit chain; default user@host)")
    p.add_argument("--version", action="version", version="stanch 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Any, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("new", cmd_new, "create a case file")
    sp.add_argument("case")
    sp.add_argument("--title")
    sp = add("ingest", cmd_ingest, "read log files, directories, .gz or - (stdin) into a case")
    sp.add_argument("case")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--format", metavar="NAME", help="skip detection (see `stanch formats`)")
    sp.add_argument("--geoip", action="append", metavar="FILE",
                    help="MaxMind DB (.mmdb) for country/city/ASN where the vendor gives none; repeatable")
    sp.add_argument("--json", action="store_true")
    sp = add("pull", cmd_pull, "fetch events or inventory live from a connector into a case (resumes from the "
             "saved cursor)")
    sp.add_argument("case")
    sp.add_argument("connector", help="a connector name (`stanch connector list`)")
    sp.add_argument("--since", metavar="T", help="start here on a first pull (ISO 8601 or relative: 24h, 7d)")
    sp.add_argument("--until", metavar="T", help="stop here")
    sp.add_argument("--reset", action="store_true", help="forget the saved cursor and start again from --since")
    sp.add_argument("--filter", action="append", metavar="NAME=VALUE",
                    help="narrow the pull where the vendor can (aws: AccessKeyId=AKIA…); a filtered pull keeps "
                         "its own cursor; repeatable")
    sp.add_argument("--secret-env", metavar="VAR", help="read the secret from $VAR for this run only")
    sp.add_argument("--json", action="store_true")
    sp = add("ingest-data", cmd_ingest_data, "look for credentials in data the attacker could read (an exported "
             "Cases CSV, a ticket dump): keeps fingerprints and where each was found, never the value")
    sp.add_argument("case")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--object-type", metavar="TYPE", help="the record type of the file's rows (e.g. Case), so "
                    "reads of that type by a compromised credential count as exposure")
    sp.add_argument("--json", action="store_true")
    sp = add("export", cmd_export, "hand the case to other tools: the timeline for Timesketch (JSONL, CSV), the "
             "report as Markdown or one self-contained HTML page, the blast-radius graph as BloodHound OpenGraph, "
             "DOT or Mermaid, the revocation set as JSON (from the redacted case: fingerprints and masked previews "
             "only)")
    sp.add_argument("case")
    sp.add_argument("--format", required=True, choices=("timesketch-jsonl", "timesketch-csv", "markdown", "html",
                                                        "opengraph", "dot", "mermaid", "revocation-set", "sets",
                                                        "bundle"))
    sp.add_argument("-o", "--output", required=True, metavar="OUT")
    sp.add_argument("--seed", metavar="SEED", help="graph formats: the blast radius of SEED (as `stanch blast`; - "
                    "reads a raw token from stdin); default: every credential flagged by findings or in a plan")
    sp.add_argument("--depth", type=int, default=3, metavar="N")
    sp.add_argument("--since", metavar="T")
    sp.add_argument("--until", metavar="T")
    sp.add_argument("--as-of", metavar="T")
    sp.add_argument("--max-seeds", type=int, default=100, metavar="N",
                    help="graph formats without --seed: at most this many flagged seeds")
    sp.add_argument("--issuer", metavar="ISS", help="sets: the SETs' iss (default: the signing key's thumbprint URI)")
    sp.add_argument("--audience", action="append", metavar="AUD", help="sets: the SETs' aud; repeatable")
    sp = add("push-sets", cmd_push_sets, "deliver the case's Security Event Tokens (one per verified revocation or "
             "rotation) to a Shared Signals receiver by RFC 8935 push; each delivery is recorded in the audit chain")
    sp.add_argument("case")
    sp.add_argument("--to", required=True, metavar="URL", help="the receiver's push endpoint")
    sp.add_argument("--issuer", metavar="ISS")
    sp.add_argument("--audience", action="append", metavar="AUD", help="default: the --to URL; repeatable")
    sp.add_argument("--auth", metavar="NAME", help="the receiver credential stored with `stanch sets-auth add NAME`")
    sp.add_argument("--auth-env", metavar="VAR", help="read the receiver credential from this environment variable")
    sp.add_argument("--force", action="store_true", help="send again SETs already delivered to this receiver")
    sp.add_argument("--ca-bundle", metavar="FILE")
    sp.add_argument("--json", action="store_true")
    kp: argparse.ArgumentParser
    sp = add("sets-key", lambda a: EXIT_USAGE, "the key that signs SETs (its private half lives in the OS keyring)")
    key_sub = sp.add_subparsers(dest="key_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    kp = key_sub.add_parser("show", help="print the public JWKS receivers verify with")
    kp.set_defaults(fn=cmd_sets_key)
    kp = key_sub.add_parser("export", help="write the private key, encrypted with a passphrase, to move a case to "
                           "another machine")
    kp.set_defaults(fn=cmd_sets_key)
    kp.add_argument("file")
    kp = key_sub.add_parser("import", help="read a key written by `stanch sets-key export`")
    kp.set_defaults(fn=cmd_sets_key)
    kp.add_argument("file")
    kp.add_argument("--replace", action="store_true", help="replace a different key already in the keyring")
    sp = add("sets-auth", lambda a: EXIT_USAGE, "receiver credentials for `stanch push-sets` (kept in the keyring)")
    auth_sub = sp.add_subparsers(dest="auth_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    for name in ("add", "remove"):
        kp = auth_sub.add_parser(name, help=f"{name} a receiver credential (add prompts without echo)")
        kp.set_defaults(fn=cmd_sets_auth)
        kp.add_argument("name")
    sp = add("info", cmd_info, "summarise a case: counts, sources, window")
    sp.add_argument("case")
    sp.add_argument("--json", action="store_true")
    sp = add("events", cmd_events, "list events in time order")
    sp.add_argument("case")
    sp.add_argument("--credential", metavar="KEY", help="a credential key (sha256:…, jti:…) or number")
    sp.add_argument("--since", metavar="T")
    sp.add_argument("--until", metavar="T")
    sp.add_argument("--limit", type=int, default=100, metavar="N")
    sp.add_argument("--json", action="store_true")
    sp = add("credentials", cmd_credentials, "list credentials with keys, previews and use")
    sp.add_argument("case")
    sp.add_argument("--json", action="store_true")
    sp = add("note", cmd_note, "add a note to the case (audited)")
    sp.add_argument("case")
    sp.add_argument("text")
    sp.add_argument("--on", metavar="ROWREF", help="event:<id>, credential:<n> or source:<n>")
    sp = add("case", lambda a: EXIT_USAGE, "case settings")
    case_sub = sp.add_subparsers(dest="case_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    sp = case_sub.add_parser("set", help="set the incident window, policy values or title")
    sp.set_defaults(fn=cmd_case_set)
    sp.add_argument("case")
    sp.add_argument("--window-start", metavar="T")
    sp.add_argument("--window-end", metavar="T")
    sp.add_argument("--policy", action="append", metavar="KEY=VALUE")
    sp.add_argument("--title")
    sp = add("fingerprint", cmd_fingerprint, "read one token from stdin; print its keys and preview, never the token")
    sp.add_argument("--json", action="store_true")
    sp = add("blast", cmd_blast, "the blast radius of a credential: reach, calls, lineage, and what to revoke")
    sp.add_argument("case")
    sp.add_argument("seed", help="a credential key (sha256:…, okta-token:…, vault-accessor:…, aws-key:…), a "
                    "credential number, client:<issuer>:<client_id>, app:<name>, principal:<id>, or - to read a "
                    "raw token from stdin (fingerprinted, never stored)")
    sp.add_argument("--depth", type=int, default=3, metavar="N", help="how many generations of minted credentials")
    sp.add_argument("--since", metavar="T")
    sp.add_argument("--until", metavar="T")
    sp.add_argument("--as-of", metavar="T", help="judge expiry at this time (default: the case's policy as_of, "
                    "else now)")
    sp.add_argument("--json", action="store_true")
    sp = add("findings", cmd_findings, "run the detection rules over a case; each finding carries its evidence and "
             "OWASP NHI / NIST CSF 2.0 / ATT&CK ids")
    sp.add_argument("case", nargs="?")
    sp.add_argument("--rules", action="append", metavar="DIR", help="a folder of your own rule files; repeatable")
    sp.add_argument("--iocs", action="append", metavar="FILE", help="an IOC pack (YAML); repeatable")
    sp.add_argument("--rule", action="append", metavar="ID", help="run only this rule; repeatable")
    sp.add_argument("--sigma", action="append", metavar="DIR",
                    help="also run Sigma rules: a folder or file (a SigmaHQ checkout's rules/), `stanch` for stanch's "
                         "own Salesloft Drift rules, `sigmahq` for the bundled Okta, GitHub, AWS and Entra rules")
    sp.add_argument("--sigma-var", action="append", metavar="NAME=V1,V2",
                    help="a value list for Sigma placeholder rules (known countries, home tenant…); repeatable")
    sp.add_argument("--show", action="store_true", help="show the last run instead of running again")
    sp.add_argument("--list-rules", action="store_true", help="list the rules and exit")
    sp.add_argument("--json", action="store_true")
    sp = add("play", lambda a: EXIT_USAGE, "revocation playbooks: plan, approve the exact plan, apply, verify")
    play = sp.add_subparsers(dest="play_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)

    def play_cmd(name: str, fn: Any, help_: str, case: bool = True, plan: bool = False) -> argparse.ArgumentParser:
        q = play.add_parser(name, help=help_, description=help_)
        q.set_defaults(fn=fn)
        if case:
            q.add_argument("case")
        if plan:
            q.add_argument("plan", type=int)
        q.add_argument("--playbooks", action="append", metavar="DIR", help="a folder of your own playbooks")
        return q

    q = play_cmd("list", cmd_play_list, "list the playbooks", case=False)
    q.add_argument("--json", action="store_true")
    q = play_cmd("show", cmd_play_show, "show a playbook's steps", case=False)
    q.add_argument("id")
    q.add_argument("--json", action="store_true")
    q = play_cmd("plan", cmd_play_plan, "expand a playbook into the exact items to do (touches nothing remote)")
    q.add_argument("id")
    q.add_argument("--input", action="append", metavar="NAME=VALUE", help="a playbook input (seed=…, "
                   "connector.<kind>=<connector name>); repeatable")
    q.add_argument("--json", action="store_true")
    q = play_cmd("approve", cmd_play_approve, "approve the plan's exact items (its hash) as a named person", plan=True)
    q.add_argument("--as", dest="as_name", required=True, metavar="NAME")
    q.add_argument("--hash", metavar="HASH", help="the hash you reviewed; refused if the plan differs")
    q = play_cmd("apply", cmd_play_apply, "run an approved plan (resumes an interrupted one), then verify every item",
                 plan=True)
    q.add_argument("--concurrency", type=int, metavar="N", help="calls in flight per connector")
    q.add_argument("--secrets-from", metavar="FILE|-", help="raw credentials the items need, one per line; matched "
                   "by their sha256 key, never stored")
    q.add_argument("--no-verify", action="store_true", help="do not probe after applying")
    q.add_argument("--read-only", action="store_true", help="refuse (read-only mode; also STANCH_READ_ONLY=1)")
    q.add_argument("--json", action="store_true")
    q = play_cmd("resume", cmd_play_apply, "continue an interrupted apply (items in flight are probed first)",
                 plan=True)
    q.add_argument("--concurrency", type=int, metavar="N")
    q.add_argument("--secrets-from", metavar="FILE|-")
    q.add_argument("--no-verify", action="store_true")
    q.add_argument("--read-only", action="store_true")
    q.add_argument("--json", action="store_true")
    q = play_cmd("verify", cmd_play_verify, "probe every done item; a failed probe re-opens it", plan=True)
    q.add_argument("--secrets-from", metavar="FILE|-")
    q.add_argument("--json", action="store_true")
    q = play_cmd("status", cmd_play_status, "plans in the case, or one plan's items and states")
    q.add_argument("plan", type=int, nargs="?")
    q.add_argument("--json", action="store_true")
    q = play_cmd("tick", cmd_play_tick, "tick a manual item with a note of what was done", plan=True)
    q.add_argument("item", type=int)
    q.add_argument("--note", required=True)
    sp = add("formats", cmd_formats, "list the log formats stanch reads")
    sp.add_argument("--json", action="store_true")
    sp = add("verify", cmd_verify, "check a case's audit chain, or a bundle (`stanch export --format bundle`): every "
             "file's hash and the bundled case's chain; exit 3 naming what changed")
    sp.add_argument("case", metavar="CASE|BUNDLE")
    sp.add_argument("--head", metavar="HEX", help="a bundle: the chain head recorded elsewhere (e.g. in the ticket)")
    sp.add_argument("--json", action="store_true")
    sp = add("merge", cmd_merge, "merge OTHER into CASE: events deduplicated by id, credentials re-resolved by key, "
             "notes, marks, findings, plans and their journals united; OTHER's audit chain kept; audited; merging "
             "again changes nothing")
    sp.add_argument("case")
    sp.add_argument("other")
    sp.add_argument("--json", action="store_true")
    sp = add("open", cmd_open, "open a case in the console (`stanch` alone, in a terminal, offers recent cases "
             "and a new case)")
    sp.add_argument("case")
    sp.add_argument("--read-only", action="store_true", help="look, never change: no ingest, plan, approve, apply, "
                    "tick, mark or note; the console shows a lock")
    sp.add_argument("--playbooks", action="append", metavar="DIR", help="a folder of your own playbooks; repeatable")
    sp = add("demo", cmd_demo, "build the demo incident (Salesloft-Drift style) and open it")
    sp.add_argument("--no-tui", action="store_true", help="build the case and print where it is")
    sp.add_argument("--case", type=Path, default=None, metavar="PATH", help="default: ./stanch-demo.stanch")
    sp.add_argument("--events", type=int, default=50_000, metavar="N")
    sp.add_argument("--seed", type=int, default=7, metavar="N")
    sp = add("connector", lambda a: EXIT_USAGE, "connector settings and secrets (secrets go to the OS keyring only)")
    conn_sub = sp.add_subparsers(dest="connector_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    sp = conn_sub.add_parser("add", help="add a connector; the secret is prompted for (not echoed) and kept "
                             "in the OS keyring", description="add a connector; its secret goes to the OS keyring")
    sp.set_defaults(fn=cmd_connector_add)
    sp.add_argument("name")
    sp.add_argument("--kind", required=True, choices=CONNECTOR_KINDS)
    sp.add_argument("--url", required=True, help="base URL (https://...)")
    sp.add_argument("--ca-bundle", metavar="FILE", help="PEM CA bundle to verify the server with")
    sp.add_argument("--client-cert", metavar="FILE", help="client certificate (PEM) for mTLS")
    sp.add_argument("--client-key", metavar="FILE", help="client private key (PEM) for mTLS")
    sp.add_argument("--client-id", metavar="ID")
    sp.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS")
    sp.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS")
    sp.add_argument("--concurrency", type=int, default=4, metavar="N")
    sp.add_argument("--rate-limit", type=float, default=None, metavar="PER_SECOND")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--secret-stdin", action="store_true", help="read the secret from a pipe")
    how.add_argument("--secret-env", metavar="VAR",
                     help="read the secret from $VAR at each run; nothing is stored in the keyring")
    sp = conn_sub.add_parser("list", help="list connectors and whether their secret is available (never the secret)")
    sp.set_defaults(fn=cmd_connector_list)
    sp.add_argument("--json", action="store_true")
    sp = conn_sub.add_parser("remove", help="remove a connector's settings and its keyring secret")
    sp.set_defaults(fn=cmd_connector_remove)
    sp.add_argument("name")
    sp.add_argument("--keep-secret", action="store_true",
                    help="remove only the settings (e.g. when the keyring cannot be reached)")
    sp = conn_sub.add_parser("test", help="check a connector's settings and secret, then ask the vendor who it is")
    sp.set_defaults(fn=cmd_connector_test)
    sp.add_argument("name")
    sp.add_argument("--secret-env", metavar="VAR", help="read the secret from $VAR for this run only")
    sp.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from casefile.case import CaseError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        if argv is None and sys.stdin.isatty() and sys.stdout.isatty():
            from tui.app import run_console

            run_console(None, analyst=args.analyst)
            return EXIT_OK
        parser.print_help()
        return EXIT_OK
    try:
        code = int(args.fn(args))
    except (UserError, CaseError) as e:
        print(f"stanch: {_scrub(e)}", file=sys.stderr)
        code = EXIT_USER
    except sqlite3.Error as e:
        print(f"stanch: {getattr(args, 'case', '')}: SQLite says {_scrub(e)}; is another stanch writing to it?",
              file=sys.stderr)
        code = EXIT_USER
    except KeyboardInterrupt:
        print("stanch: interrupted; what was committed is kept (run the same command again to finish)",
              file=sys.stderr)
        code = 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
