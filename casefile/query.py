"""Read-side queries the command line and the console share: case info, events, credentials."""

from __future__ import annotations

from typing import Any

import orjson

from casefile.case import Case, CaseError
from casefile.identity import KeyError_, normalise_key
from casefile.secrets import fingerprint
from casefile.timeutil import to_micros

EVENT_COLUMNS = ("id", "time", "vendor", "action", "outcome", "credential_id", "subject_credential_id", "principal",
                 "client", "src_ip", "user_agent", "country", "city", "asn", "method", "resource", "status", "bytes",
                 "rows", "vendor_type", "vendor_id", "request_id", "session_id", "source_id", "line")


def info(case: Case) -> dict[str, Any]:
    """`stanch info --json`: schema version first, then counts, sources, and the case's meta."""
    c = case.conn
    meta = case.meta()

    def count(table: str) -> int:
        return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    sources = [
        {
            "id": r[0], "path": r[1], "vendor": r[2], "format": r[3], "parser_version": r[4], "sha256": r[5],
            "size": r[6], "started_at": r[7], "finished_at": r[8], "status": r[9], "events_seen": r[10],
            "events_added": r[11], "malformed": r[12], "skipped": r[13],
            "problems": orjson.loads(r[14]) if r[14] else [],
        }
        for r in c.execute(
            "SELECT id, path, vendor, format, parser_version, sha256, size, started_at, finished_at, status,"
            " events_seen, events_added, malformed, skipped, problems FROM sources ORDER BY id"
        )
    ]
    span = c.execute("SELECT min(time), max(time) FROM events").fetchone()
    return {
        "schema_version": int(meta.get("schema_version", 0)),
        "counts": {t: count(t) for t in ("events", "credentials", "credential_keys", "sources", "notes", "snapshots",
                                         "exposures", "audit")},
        "sources": sources,
        "pulls": [{"connector": r[0], "stream": r[1], "updated_at": r[2], "source": r[3]} for r in c.execute(
            "SELECT connector, stream, updated_at, source_id FROM pull_cursors ORDER BY connector, stream")],
        "title": meta.get("title"),
        "app_version": meta.get("app_version"),
        "created_at": meta.get("created_at"),
        "window": {"start": meta.get("window_start"), "end": meta.get("window_end")},
        "policy": case.policy(),
        "events_span": {"first": span[0], "last": span[1]},
        "path": case.path,
    }


def credential_id_for(case: Case, key: str) -> int:
    """The credential a key names. Accepts a key (`sha256:…`, `jti:…`, …), a bare credential number, or a
    `sha256:` prefix of at least 16 hex characters."""
    c = case.conn
    if key.isdigit():
        if c.execute("SELECT 1 FROM credentials WHERE id = ?", (int(key),)).fetchone():
            return int(key)
        raise CaseError(f"--credential {key}: no credential {key}; list them with `stanch credentials {case.path}`")
    try:
        k = normalise_key(key)
    except KeyError_ as e:
        raise CaseError(f"--credential: {e}") from e
    row = c.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (k,)).fetchone()
    if row is None and k.startswith("sha256:") and len(k) >= 7 + 16:
        row = c.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (f"sha256/16:{k[7:23]}",)).fetchone()
    if row is None:
        raise CaseError(f"--credential {key}: no credential with that key in {case.path}; "
                        f"list keys with `stanch credentials {case.path}`")
    return int(row[0])


def events(case: Case, credential: str | None = None, since: str | None = None, until: str | None = None,
           limit: int | None = 100) -> list[dict[str, Any]]:
    """Events in time order, optionally for one credential (used or minted/revoked by the event)."""
    where: list[str] = []
    params: list[object] = []
    if credential is not None:
        cid = credential_id_for(case, credential)
        where.append("(credential_id = ? OR subject_credential_id = ?)")
        params += [cid, cid]
    if since:
        where.append("ts >= ?")
        params.append(to_micros(since))
    if until:
        where.append("ts <= ?")
        params.append(to_micros(until))
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts, rowid"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in case.conn.execute(sql, params)]


def credentials(case: Case) -> list[dict[str, Any]]:
    """Every credential with its keys and event counts, most recently used first."""
    c = case.conn
    keys: dict[int, list[str]] = {}
    for key, cid in c.execute("SELECT key, credential_id FROM credential_keys ORDER BY key"):
        keys.setdefault(cid, []).append(key)
    used = dict(c.execute("SELECT credential_id, count(*) FROM events WHERE credential_id IS NOT NULL GROUP BY 1"))
    subject = dict(c.execute(
        "SELECT subject_credential_id, count(*) FROM events WHERE subject_credential_id IS NOT NULL GROUP BY 1"))
    cols = ("id", "kind", "issuer", "client", "principal", "scopes", "issued_at", "expires_at", "first_seen",
            "last_used", "binding", "status", "preview")
    out = []
    for r in c.execute(f"SELECT {', '.join(cols)} FROM credentials ORDER BY last_used DESC, id"):
        d = dict(zip(cols, r, strict=True))
        d["keys"] = keys.get(d["id"], [])
        d["events"] = used.get(d["id"], 0)
        d["lifecycle_events"] = subject.get(d["id"], 0)
        out.append(d)
    return out


def fingerprint_token(raw: str) -> dict[str, Any]:
    """`stanch fingerprint`: the keys and preview of a token read from stdin. The token is not echoed."""
    fp = fingerprint(raw)
    return {"keys": list(fp.keys), "preview": fp.preview, "kind": fp.kind, "shape": fp.shape,
            "claims": {k: v for k, v in fp.claims.items() if k != "cnf"}}
