"""Exports a responder hands to the rest of the team: the timeline for Timesketch (JSONL or CSV) and the incident
report (Markdown or one self-contained HTML page). All are written from what the case holds (already redacted at
ingest: fingerprints and masked previews, never a raw token), streamed, to a temporary file renamed into place,
so a failed export leaves no half file and never touches the case. Every format succeeds on any case, even an
empty one.

Timesketch: one record per event with Timesketch's required `message`, `datetime` (ISO 8601 with an explicit
`+00:00`) and `timestamp_desc`, plus stanch's canonical columns (`stanch_event_id`, `vendor`, `action`, `src_ip`,
…). In the CSV, a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'` (formula injection).
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from casefile import plans as plans_mod
from casefile.atomic import atomic_write
from casefile.case import Case
from casefile.export_graph import GRAPH_FORMATS, export_graph
from casefile.query import info

FORMATS = ("timesketch-jsonl", "timesketch-csv", "markdown", "html", *GRAPH_FORMATS, "bundle")
_TS_COLUMNS = ("id", "time", "vendor", "action", "outcome", "principal", "client", "src_ip", "user_agent", "country",
               "city", "asn", "method", "resource", "status", "bytes", "rows", "vendor_type", "vendor_id",
               "request_id", "session_id", "cred_keys", "subject_keys", "source_id", "line")


def export(case: Case, fmt: str, out: str | os.PathLike[str],
           progress: Callable[[int], None] | None = None, **graph: Any) -> int:
    """Write `fmt` to `out`; returns how many records (events, report blocks, graph nodes or revocation items)
    were written. `graph`: seed, raw_token, depth, since, until, as_of, max_seeds for the graph formats."""
    if fmt in GRAPH_FORMATS:
        return export_graph(case, fmt, out, **graph)
    if fmt == "bundle":
        from casefile.bundle import export_bundle

        return export_bundle(case, out)
    if fmt == "timesketch-jsonl":
        return timesketch_jsonl(case, out, progress)
    if fmt == "timesketch-csv":
        return timesketch_csv(case, out, progress)
    if fmt == "markdown":
        return report_markdown(case, out)
    if fmt == "html":
        return report_html(case, out)
    raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")


def _timesketch_docs(case: Case) -> Iterator[dict[str, Any]]:
    sql = f"SELECT {', '.join(_TS_COLUMNS)} FROM events ORDER BY ts, rowid"
    for row in case.conn.execute(sql):
        d = dict(zip(_TS_COLUMNS, row, strict=True))
        doc = {"message": _message(d), "datetime": _with_offset(d["time"]), "timestamp_desc": d["action"],
               "stanch_event_id": d.pop("id")}
        doc.update({k: v for k, v in d.items() if v is not None and k != "time"})
        yield doc


def _with_offset(t: str) -> str:
    """ISO 8601 with an explicit `+00:00` (Timesketch reads a time without an offset in the server's zone)."""
    return t[:-1] + "+00:00" if t.endswith("Z") else t


def timesketch_jsonl(case: Case, out: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> int:
    n = 0
    with atomic_write(out) as f:
        for doc in _timesketch_docs(case):
            f.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
            n += 1
            if progress is not None and n % 50_000 == 0:
                progress(n)
    return n


def _message(d: dict[str, Any]) -> str:
    parts = [d["vendor"], d["action"], d.get("outcome") or ""]
    if d.get("method") or d.get("resource"):
        parts.append(f"{d.get('method') or ''} {d.get('resource') or ''}".strip())
    if d.get("principal"):
        parts.append(f"by {d['principal']}")
    if d.get("src_ip"):
        parts.append(f"from {d['src_ip']}")
    return " ".join(p for p in parts if p)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def md(value: object) -> str:
    """Untrusted text as literal Markdown: control characters dropped, Markdown and HTML syntax escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", "" if value is None else str(value)))


Block = tuple[Any, ...]


def report_blocks(case: Case) -> list[Block]:
    """The incident report as blocks (rendered to Markdown or HTML): summary, key timeline (the events marked as
    evidence), findings with OWASP NHI / NIST CSF 2.0 / ATT&CK ids, actions with each item's state and verdict,
    the open checklist, notes, sources. Every string in a block is untrusted and escaped by the renderer."""
    from casefile import findings as findings_mod
    from casefile.marks import marked_events

    doc = info(case)
    w = doc["window"]
    out: list[Block] = [("h1", doc["title"] or Path(case.path).name)]
    out += [("h2", "Summary"), ("ul", [
        f"Incident window: {w['start'] or '-'} to {w['end'] or '-'}",
        f"Events: {doc['counts']['events']:,} from {doc['counts']['sources']} sources "
        f"({doc['events_span']['first'] or '-'} to {doc['events_span']['last'] or '-'})",
        f"Credentials: {doc['counts']['credentials']:,}; exposures found in data: {doc['counts']['exposures']:,}",
        f"Audit chain: {doc['counts']['audit']:,} entries"])]
    marks = marked_events(case.conn)
    out.append(("h2", "Key timeline"))
    if not marks:
        out.append(("p", "No event is marked as evidence yet (the timeline's `m`)."))
    else:
        ids = [m[0] for m in marks]
        rows = []
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start:chunk_start + 500]
            rows += case.conn.execute(
                f"SELECT time, vendor, action, outcome, principal, src_ip, method, resource FROM events WHERE id IN "
                f"({','.join('?' * len(chunk))})", chunk).fetchall()
        rows.sort(key=lambda r: r[0])
        out.append(("table", ("time", "source", "action", "outcome", "principal", "address", "request"),
                    [(r[0], r[1], r[2], r[3] or "", r[4] or "", r[5] or "", " ".join(x for x in r[6:8] if x))
                     for r in rows]))
    run = findings_mod.latest(case)
    out.append(("h2", "Findings"))
    if run is None:
        out.append(("p", "Detection rules have not been run on this case (`stanch findings CASE`)."))
    elif not run["findings"]:
        out.append(("p", f"Run {run['run']} ({run['rules']} rules): no findings."))
    else:
        order = {s: i for i, s in enumerate(("critical", "high", "medium", "low", "info"))}
        out.append(("table", ("severity", "rule", "subject", "first", "last", "events", "OWASP NHI", "NIST CSF 2.0",
                              "ATT&CK"),
                    [(f["severity"], f["rule_title"], f["subject"] or "-", f["first"] or "-", f["last"] or "-",
                      str(f["count"]), ", ".join(f["nhi"]), ", ".join(f["csf"]), ", ".join(f["attack"]))
                     for f in sorted(run["findings"], key=lambda f: (order.get(f["severity"], 9), f["rule_id"]))]))
    out.append(("h2", "Actions"))
    all_plans = plans_mod.plans(case)
    if not all_plans:
        out.append(("p", "No revocation plan yet (`stanch play plan CASE PLAYBOOK`)."))
    manual: list[str] = []
    open_items: list[str] = []
    for p in all_plans:
        plan = plans_mod.load(case, p["plan"])
        out += [("h3", f"Plan {plan.id}: {plan.title}"),
                ("p", f"Approved by {plan.approved_by or 'nobody yet'}; hash {plan.hash[:16]}")]
        out.append(("table", ("#", "kind", "verb", "target", "state", "verdict"),
                    [(str(i.seq), i.kind, i.verb or "-", i.preview or i.target or i.text or "-", i.state,
                      i.verdict or "-") for i in plan.items]))
        for i in plan.items:
            if i.kind == "manual" and i.state not in ("done", "verified"):
                manual.append(f"plan {plan.id} item {i.seq}: {i.text}")
            elif i.kind == "act" and i.state not in ("verified", "skipped"):
                open_items.append(f"plan {plan.id} item {i.seq}: {i.verb} {i.preview or i.target} is {i.state}"
                                  + (f" ({i.note})" if i.note else ""))
    out += [("h2", "Open checklist"), ("checklist", manual) if manual else ("p", "Nothing open.")]
    out += [("h2", "Open items"), ("ul", open_items) if open_items else ("p", "Every act item is verified.")]
    notes = case.conn.execute("SELECT time, who, on_ref, text FROM notes ORDER BY rowid").fetchall()
    out.append(("h2", "Notes"))
    out.append(("ul", [f"{t} {who}{' on ' + ref if ref else ''}: {text}" for t, who, ref, text in notes])
               if notes else ("p", "No notes."))
    out += [("h2", "Sources"), ("table", ("#", "format", "events", "malformed", "status"),
                                 [(str(s["id"]), s["format"], f"{s['events_added']:,}", str(s["malformed"]),
                                   s["status"]) for s in doc["sources"]])]
    return out


def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {md(b[1])}", ""]
        elif kind == "p":
            lines += [md(b[1]), ""]
        elif kind == "ul":
            lines += [f"- {md(x)}" for x in b[1]] + [""]
        elif kind == "checklist":
            lines += [f"- [ ] {md(x)}" for x in b[1]] + [""]
        elif kind == "table":
            head, rows = b[1], b[2]
            lines += ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows] + [""]
    return "\n".join(lines)


_HTML_STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f2f2f2}h1{font-size:1.5em}h2{border-bottom:1px solid #ddd}
td{word-break:break-word}"""


def render_html(blocks: list[Block]) -> str:
    """One self-contained page: inline CSS, no script, no external reference of any kind."""
    e = html.escape
    title = next((b[1] for b in blocks if b[0] == "h1"), "stanch report")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             f"<title>{e(_plain(title))}</title><style>{_HTML_STYLE}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(_plain(b[1]))}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(_plain(b[1]))}</p>")
        elif kind in ("ul", "checklist"):
            box = "&#9744; " if kind == "checklist" else ""
            parts.append("<ul>" + "".join(f"<li>{box}{e(_plain(x))}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(_plain(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(_plain(c))}</td>" for c in r) + "</tr>" for r in b[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _plain(value: object) -> str:
    return _CONTROL.sub(" ", "" if value is None else str(value))


def report_markdown(case: Case, out: str | os.PathLike[str]) -> int:
    blocks = report_blocks(case)
    with atomic_write(out) as f:
        f.write((render_markdown(blocks) + "\n").encode())
    return len(blocks)


def report_html(case: Case, out: str | os.PathLike[str]) -> int:
    blocks = report_blocks(case)
    with atomic_write(out) as f:
        f.write(render_html(blocks).encode())
    return len(blocks)


# A cell a spreadsheet would run as a formula (OWASP CSV injection): prefixed with a quote so it stays text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    s = "" if value is None else str(value)
    return "'" + s if s.startswith(_FORMULA_START) else s


def timesketch_csv(case: Case, out: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> int:
    """Timesketch's CSV import: the same columns as the JSONL (`message`, `datetime`, `timestamp_desc` first),
    every cell that a spreadsheet would evaluate neutralised."""
    cols = ["message", "datetime", "timestamp_desc", "stanch_event_id", *[c for c in _TS_COLUMNS
                                                                         if c not in ("id", "time")]]
    n = 0
    with atomic_write(out) as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(cols)
        for d in _timesketch_docs(case):
            writer.writerow([csv_cell(d.get(c)) for c in cols])
            n += 1
            if progress is not None and n % 50_000 == 0:
                progress(n)
        text.flush()
        text.detach()
    return n
