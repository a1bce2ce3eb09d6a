"""Exports a responder hands to the rest of the team: the timeline as Timesketch JSONL, and the incident report
as Markdown. Both are written from what the case holds (already redacted at ingest: fingerprints and masked
previews, never a raw token), streamed, to a temporary file renamed into place, so a failed export leaves no
half file and never touches the case. Every format succeeds on any case, even an empty one.

Timesketch JSONL: one JSON object per event with Timesketch's required `message`, `datetime` (ISO 8601) and
`timestamp_desc`, plus stanch's canonical columns (`stanch_event_id`, `vendor`, `action`, `src_ip`, …).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from casefile import plans as plans_mod
from casefile.case import Case
from casefile.query import info

FORMATS = ("timesketch-jsonl", "markdown")
_TS_COLUMNS = ("id", "time", "vendor", "action", "outcome", "principal", "client", "src_ip", "user_agent", "country",
               "city", "asn", "method", "resource", "status", "bytes", "rows", "vendor_type", "vendor_id",
               "request_id", "session_id", "cred_keys", "subject_keys", "source_id", "line")


@contextmanager
def _atomic(out: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export(case: Case, fmt: str, out: str | os.PathLike[str],
           progress: Callable[[int], None] | None = None) -> int:
    """Write `fmt` to `out`; returns how many records (events, or report sections) were written."""
    if fmt == "timesketch-jsonl":
        return timesketch_jsonl(case, out, progress)
    if fmt == "markdown":
        return report_markdown(case, out)
    raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")


def timesketch_jsonl(case: Case, out: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> int:
    n = 0
    sql = f"SELECT {', '.join(_TS_COLUMNS)} FROM events ORDER BY ts, rowid"
    with _atomic(out) as f:
        for row in case.conn.execute(sql):
            d = dict(zip(_TS_COLUMNS, row, strict=True))
            doc = {"message": _message(d), "datetime": d["time"], "timestamp_desc": d["action"],
                   "stanch_event_id": d.pop("id")}
            doc.update({k: v for k, v in d.items() if v is not None and k != "time"})
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


def report_markdown(case: Case, out: str | os.PathLike[str]) -> int:
    """The incident report: summary, sources, findings (with OWASP NHI / NIST CSF 2.0 / ATT&CK ids), plans with
    each item's state and verdict, manual checklist items, and notes."""
    from casefile import findings as findings_mod

    doc = info(case)
    lines = [f"# {md(doc['title'] or Path(case.path).name)}", ""]
    w = doc["window"]
    lines += ["## Summary", "", f"- Incident window: {md(w['start'] or '-')} to {md(w['end'] or '-')}",
              f"- Events: {doc['counts']['events']:,} from {doc['counts']['sources']} sources "
              f"({md(doc['events_span']['first'] or '-')} to {md(doc['events_span']['last'] or '-')})",
              f"- Credentials: {doc['counts']['credentials']:,}; exposures found in data: {doc['counts']['exposures']:,}",
              f"- Audit chain: {doc['counts']['audit']:,} entries", ""]
    lines += ["## Sources", "", "| # | format | events | malformed | status |", "|---|---|---|---|---|"]
    lines += [f"| {s['id']} | {md(s['format'])} | {s['events_added']:,} | {s['malformed']} | {md(s['status'])} |"
              for s in doc["sources"]]
    lines.append("")
    run = findings_mod.latest(case)
    lines += ["## Findings", ""]
    if run is None:
        lines += ["Detection rules have not been run on this case (`stanch findings CASE`).", ""]
    elif not run["findings"]:
        lines += [f"Run {run['run']} ({run['rules']} rules): no findings.", ""]
    else:
        lines += ["| severity | rule | subject | first | last | events | OWASP NHI | NIST CSF 2.0 | ATT&CK |",
                  "|---|---|---|---|---|---|---|---|---|"]
        order = {s: i for i, s in enumerate(("critical", "high", "medium", "low", "info"))}
        for f in sorted(run["findings"], key=lambda f: (order.get(f["severity"], 9), f["rule_id"])):
            lines.append(f"| {md(f['severity'])} | {md(f['rule_title'])} | {md(f['subject'] or '-')} | "
                         f"{md(f['first'] or '-')} | {md(f['last'] or '-')} | {f['count']} | {md(', '.join(f['nhi']))}"
                         f" | {md(', '.join(f['csf']))} | {md(', '.join(f['attack']))} |")
        lines.append("")
    lines += ["## Actions", ""]
    all_plans = plans_mod.plans(case)
    if not all_plans:
        lines += ["No revocation plan yet (`stanch play plan CASE PLAYBOOK`).", ""]
    manual: list[str] = []
    for p in all_plans:
        plan = plans_mod.load(case, p["plan"])
        lines += [f"### Plan {plan.id}: {md(plan.title)}", "",
                  f"Approved by {md(plan.approved_by or 'nobody yet')}; hash `{plan.hash[:16]}`", "",
                  "| # | kind | verb | target | state | verdict |", "|---|---|---|---|---|---|"]
        for i in plan.items:
            verdict = i.verdict or "-"
            lines.append(f"| {i.seq} | {i.kind} | {md(i.verb or '-')} | {md(i.preview or i.target or i.text or '-')}"
                         f" | {md(i.state)} | {md(verdict)} |")
            if i.kind == "manual" and i.state not in ("done", "verified"):
                manual.append(f"- [ ] plan {plan.id} item {i.seq}: {md(i.text)}")
        lines.append("")
    lines += ["## Open checklist", "", *(manual or ["Nothing open."]), ""]
    notes = case.conn.execute("SELECT time, who, on_ref, text FROM notes ORDER BY rowid").fetchall()
    lines += ["## Notes", ""]
    lines += [f"- {md(t)} {md(who)}{' on ' + md(ref) if ref else ''}: {md(text)}" for t, who, ref, text in notes] or [
        "No notes."]
    with _atomic(out) as f:
        f.write(("\n".join(lines) + "\n").encode())
    return len(lines)
