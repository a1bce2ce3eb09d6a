"""Second-order exposure: credentials found in data the attacker could read (`stanch ingest-data`).

A responder adds the data a compromised credential reached — an exported Salesforce Cases CSV, a ticket
dump, a repository's files — and stanch looks in every value for credential-shaped strings
(`casefile.secrets.find_secrets`) and for values under secret-named fields (`password`, `api_key`, …). Each
one found becomes a credential (its fingerprints and masked preview; the raw value is dropped at once) and an
`exposures` row naming where: the file and line, the record's id and type, the field. The blast radius then
joins a record id to the compromised credential's reads (`/sobjects/Case/<id>`), and the exposed credential
gets a blast radius of its own.

Formats, by content: CSV (a header line; the record id is the `Id`/`id` column, or the first column ending
in `Id`), JSON lines or a JSON array of objects (the id is `Id`/`id`/`uuid`, the type `attributes.type` where
Salesforce writes it), else plain text (each line is its own record, `<file>:<line>`). Files are read
streaming; a line that cannot be read is counted, never fatal.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from casefile import audit
from casefile.case import Case, CaseError
from casefile.identity import Resolver, expand_keys
from casefile.redact import needs_redaction, redact
from casefile.secrets import find_secrets, fingerprint, is_secret_field
from casefile.sources import FileSource, UnreadableInput, expand
from casefile.timeutil import now_iso

KEEP_PROBLEMS = 100
_ID_FIELDS = ("Id", "id", "ID", "uuid", "_id")
# Values under a secret-named field shorter than this are not secrets worth a credential (`N/A`, `none`).
_MIN_FIELD_SECRET = 8
_NOT_SECRETS = frozenset({"null", "none", "n/a", "redacted", "********", "true", "false"})


@dataclass(slots=True)
class DataSummary:
    path: str
    format: str | None = None
    sha256: str | None = None
    source_id: int | None = None
    records: int = 0
    exposures: int = 0
    credentials: int = 0
    unreadable: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    already_ingested: bool = False
    error: str | None = None  # the file could not be read to its end (a corrupt or truncated .gz)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Found:
    line: int
    object: str | None
    object_type: str | None
    field: str | None
    raw: str  # held only until it is fingerprinted


def ingest_data(case: Case, paths: list[str], object_type: str | None = None) -> list[DataSummary]:
    """Look for credentials in data files; store fingerprints and where each was found. Never stores a value."""
    try:
        sources = expand(paths)
    except FileNotFoundError as e:
        raise CaseError(str(e)) from e
    return [_ingest_one(case, src, object_type) for src in sources]


def _ingest_one(case: Case, src: FileSource, object_type: str | None) -> DataSummary:
    started = time.perf_counter()
    summary = DataSummary(src.name)
    summary.sha256 = digest = src.sha256()
    done = case.conn.execute("SELECT id, format FROM sources WHERE sha256 = ? AND status = 'done' AND vendor = 'data'"
                             " LIMIT 1", (digest,)).fetchone()
    if done is not None:
        summary.already_ingested, (summary.source_id, summary.format) = True, done
        return summary
    try:
        head = src.head(5)
    except UnreadableInput as e:
        summary.error = str(e)
        return summary
    fmt = _detect(head)
    summary.format = fmt
    with case.transaction() as c:
        cur = c.execute("INSERT INTO sources(path, vendor, format, parser_version, sha256, size, started_at, status,"
                        " analyst) VALUES (?, 'data', ?, '1', ?, ?, ?, 'running', ?)",
                        (src.name, fmt, digest, src.size(), now_iso(), case.analyst))
        summary.source_id = source_id = int(cur.lastrowid or 0)
        audit.append(c, case.analyst, "ingest-data.start", {"source": source_id, "path": src.name, "format": fmt})
    reader = {"data-csv": _csv, "data-json": _json, "data-text": _text}[fmt]
    found: list[Found] = []
    try:
        for item in reader(src, summary, object_type):
            found.append(item)
            if len(found) >= 2000:
                _store(case, source_id, found, summary)
                found = []
    except UnreadableInput as e:  # what was read before the cut is kept; the source stays `failed`
        summary.error = f"{e} (the {summary.records} records before it were searched)"
    _store(case, source_id, found, summary)
    with case.transaction() as c:
        c.execute("UPDATE sources SET status = ?, finished_at = ?, events_seen = ?, malformed = ?, problems = ?"
                  " WHERE id = ?", ("failed" if summary.error else "done", now_iso(), summary.records,
                                    summary.unreadable, orjson.dumps(summary.problems).decode(), source_id))
        audit.append(c, case.analyst, "ingest-data.done", {"source": source_id, "records": summary.records,
                                                           "exposures": summary.exposures})
    summary.seconds = time.perf_counter() - started
    return summary


def _detect(head: list[str]) -> str:
    first = head[0].lstrip("\ufeff").lstrip() if head else ""
    if first.startswith(("{", "[")):
        return "data-json"
    if first and ("," in first or "\t" in first):
        try:
            dialect = csv.Sniffer().sniff("\n".join(head[:5]))
            cols = next(csv.reader([first], dialect))
        except (csv.Error, StopIteration):
            return "data-text"
        if len(cols) >= 2 and all(c.strip() and len(c) < 128 for c in cols):
            return "data-csv"
    return "data-text"


def _problem(summary: DataSummary, line: int, reason: str) -> None:
    """Count an unreadable record; keep its reason (one line, redacted: a decoder's message can quote the data)."""
    summary.unreadable += 1
    if len(summary.problems) < KEEP_PROBLEMS:
        reason = (reason.strip().splitlines() or [""])[0][:300]
        if needs_redaction(reason):
            reason = str(redact(reason)[0])
        summary.problems.append({"line": line, "kind": "malformed", "reason": reason})


def _values(obj: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, string value) for every string in a JSON value, in document order. A loop, not recursion:
    a data file can nest deeper than Python's recursion limit (JSON arrays are read by ijson, which has none)."""
    stack: list[tuple[str, Any]] = [(path, obj)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(reversed([(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(where, v) for v in value]))
        elif isinstance(value, str):
            yield where, value


def _secrets_in(value: str, field_name: str | None) -> Iterator[str]:
    spans = find_secrets(value) if len(value) >= 14 else []
    for start, end, _shape in spans:
        yield value[start:end]
    if not spans and field_name and is_secret_field(field_name.rsplit(".", 1)[-1]):
        v = value.strip()
        if len(v) >= _MIN_FIELD_SECRET and v.lower() not in _NOT_SECRETS and not v.startswith("[redacted"):
            yield v


def _csv(src: FileSource, summary: DataSummary, object_type: str | None) -> Iterator[Found]:
    with src.text() as fh:
        text = io.TextIOWrapper(fh.buffer, encoding="utf-8-sig", errors="replace", newline="") \
            if hasattr(fh, "buffer") else fh
        reader = csv.reader(text)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return
        id_col = next((i for i, h in enumerate(header) if h in _ID_FIELDS), None)
        if id_col is None:
            id_col = next((i for i, h in enumerate(header) if h.endswith("Id")), None)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                _problem(summary, reader.line_num, f"unreadable CSV row: {e}")
                continue
            summary.records += 1
            obj = row[id_col] if id_col is not None and id_col < len(row) else None
            for i, value in enumerate(row):
                name = header[i] if i < len(header) else f"column {i + 1}"
                for raw in _secrets_in(value, name):
                    yield Found(reader.line_num, obj or f"{src.name}:{reader.line_num}", object_type, name, raw)


def _json(src: FileSource, summary: DataSummary, object_type: str | None) -> Iterator[Found]:
    head = src.head(1)
    if head and head[0].lstrip("\ufeff").lstrip().startswith("["):
        import ijson

        seen: set[str] = set()
        with src.binary() as fh:
            try:
                for n, obj in enumerate(ijson.items(fh, "item"), 1):
                    summary.records += 1
                    for item in _json_record(obj, n, src.name, object_type):
                        seen.add(item.raw)
                        yield item
                return
            except (ijson.JSONError, UnicodeDecodeError) as e:  # ijson decodes UTF-8 strictly
                _problem(summary, summary.records + 1, f"unreadable JSON array item: {e}")
        # The array breaks off: what follows (and the broken item) can still hold tokens. Look in the text, by line.
        for n, line in src.lines():
            for raw in _secrets_in(line, None):
                if raw not in seen:
                    seen.add(raw)
                    yield Found(n, f"{src.name}:{n}", object_type, None, raw)
        return
    for n, line in src.lines():
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            _problem(summary, n, f"not JSON: {e}")
            # still look in the text: a broken line can hold a token
            for raw in _secrets_in(line, None):
                yield Found(n, f"{src.name}:{n}", object_type, None, raw)
            continue
        summary.records += 1
        yield from _json_record(obj, n, src.name, object_type)


def _json_record(obj: Any, n: int, name: str, object_type: str | None) -> Iterator[Found]:
    ident = None
    kind = object_type
    if isinstance(obj, dict):
        ident = next((str(obj[f]) for f in _ID_FIELDS if isinstance(obj.get(f), str | int)), None)
        attrs = obj.get("attributes")
        if kind is None and isinstance(attrs, dict) and isinstance(attrs.get("type"), str):
            kind = attrs["type"]
    for path, value in _values(obj):
        for raw in _secrets_in(value, path):
            yield Found(n, ident or f"{name}:{n}", kind, path, raw)


def _text(src: FileSource, summary: DataSummary, object_type: str | None) -> Iterator[Found]:
    for n, line in src.lines():
        summary.records += 1
        for raw in _secrets_in(line, None):
            yield Found(n, f"{src.name}:{n}", object_type, None, raw)


def _store(case: Case, source_id: int, found: list[Found], summary: DataSummary) -> None:
    """Fingerprint what was found, drop the raw values, and store credentials and exposures in one transaction."""
    if not found:
        return
    resolver = Resolver(case.conn, source_id)
    with case.transaction() as c:
        seq, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(rowid), 0) FROM exposures").fetchone()[0]
        created = resolver.created
        rows = []
        for f in found:
            fp = fingerprint(f.raw)
            f.raw = ""  # the value is not kept past this point
            cid = resolver.resolve_untimed(expand_keys(fp.keys), fp.kind if fp.kind != "unknown" else "secret",
                                           fp.preview or None)
            rows.append((cid, source_id, f.line, f.object, f.object_type, f.field, fp.shape or None,
                         fp.preview or None))
        for i, (cid, sid, line, obj, otype, fld, shape, preview) in enumerate(rows, before + 1):
            values = (i, sid, None, line, obj, otype, fld, shape, preview, seq)
            c.execute("INSERT INTO exposures(rowid, credential_id, source_id, event_id, line, object, object_type,"
                      " field, shape, preview, audit_seq, row_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (i, cid, *values[1:], audit.row_hash(values)))
        audit.record_rows(c, "exposures", before, seq, case.analyst, "ingest-data.batch",
                          {"source": source_id, "exposures": len(rows)})
        summary.exposures += len(rows)
        summary.credentials += resolver.created - created
