"""Creating and opening a case file: one SQLite file per incident, WAL, mode 0600, secure_delete on."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from casefile import audit
from casefile.schema import SCHEMA_VERSION, ensure_derived, migrate
from casefile.timeutil import now_iso

APP_NAME = "stanch"
APP_VERSION = "0.1.0"


class CaseError(Exception):
    """A problem the responder can fix; the message is one line that says how."""


class Case:
    """An open case file. Use `create_case` or `open_case`; close it (or use `with`)."""

    def __init__(self, path: str, conn: sqlite3.Connection, analyst: str | None = None) -> None:
        self.path = path
        self.conn = conn
        self.analyst = analyst or audit.default_analyst()

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self.conn.close()

    # -- meta -------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """All meta values."""
        return {k: v for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, str], operation: str = "case.set") -> None:
        """Set meta values in one audited transaction."""
        with self.transaction():
            for k, v in values.items():
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (k, v),
                )
            audit.append(self.conn, self.analyst, operation, {"set": values})

    @property
    def schema_version(self) -> int:
        return int(self.meta().get("schema_version", "0"))

    def policy(self) -> dict[str, Any]:
        """Policy values set with `stanch case set --policy key=value`."""
        raw = self.meta().get("policy")
        return orjson.loads(raw) if raw else {}

    # -- transactions -----------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""
        return _Transaction(self.conn)

    # -- notes ------------------------------------------------------------------------------
    def add_note(self, text: str, on_ref: str | None = None) -> int:
        """Add a note (audited); `on_ref` is `event:<id>`, `credential:<n>` or `source:<n>`. Returns its row."""
        if on_ref is not None:
            self._check_ref(on_ref)
        from casefile.redact import redact

        # A responder pastes what they found; a credential in it is kept as its fingerprint marker, never raw.
        redacted, _ = redact(text)
        text = redacted if isinstance(redacted, str) else text
        with self.transaction():
            seq, _ = audit.next_seq(self.conn)
            before = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM notes").fetchone()[0]
            rowid = before + 1
            values = (rowid, now_iso(), self.analyst, text, on_ref, seq)
            self.conn.execute(
                "INSERT INTO notes(rowid, time, who, text, on_ref, audit_seq, row_hash) VALUES (?,?,?,?,?,?,?)",
                (*values, audit.row_hash(values)),
            )
            audit.record_rows(self.conn, "notes", before, seq, self.analyst, "note", {"on": on_ref})
        return rowid

    def _check_ref(self, ref: str) -> None:
        kind, _, ident = ref.partition(":")
        queries = {
            "event": "SELECT 1 FROM events WHERE id = ?",
            "credential": "SELECT 1 FROM credentials WHERE id = ?",
            "source": "SELECT 1 FROM sources WHERE id = ?",
        }
        if kind not in queries or not ident:
            raise CaseError(f"--on {ref}: expected event:<id>, credential:<n> or source:<n>")
        if self.conn.execute(queries[kind], (ident,)).fetchone() is None:
            raise CaseError(f"--on {ref}: no such {kind} in {self.path}; list them with `stanch {kind}s {self.path}`")


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # an interrupt may land after COMMIT
            self.conn.execute("ROLLBACK")


def _connect(path: str, wal: bool = True) -> sqlite3.Connection:
    """A connection with stanch's settings; `wal`: switch the file to WAL mode (open_case asks only when it is not)."""
    old = os.umask(0o077)  # the -wal and -shm files SQLite creates get 0600 too
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    finally:
        os.umask(old)
    try:
        # 16 KiB pages: a vendor record of 1-3 KB no longer takes a 4 KiB page to itself (ingest +10-30%).
        conn.execute("PRAGMA page_size = 16384")  # takes effect only when the file is new
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a large case stay in memory
    except BaseException:
        conn.close()
        raise
    return conn


def create_case(path: str | os.PathLike[str], title: str | None = None, analyst: str | None = None,
                extra_meta: dict[str, str] | None = None) -> Case:
    """Create a new case file (mode 0600). Fails if the path exists."""
    p = Path(path)
    if p.exists():
        raise CaseError(f"{p}: already exists; open it with `stanch info {p}` or choose another path")
    if not p.parent.exists():
        raise CaseError(f"{p}: directory {p.parent} does not exist; create it first")
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    conn = _connect(str(p))
    migrate(conn, 0)
    case = Case(str(p), conn, analyst)
    meta = {"app": APP_NAME, "app_version": APP_VERSION, "created_at": now_iso(), "title": title or p.stem}
    meta.update(extra_meta or {})
    case.set_meta(meta, operation="case.create")
    return case


def open_case(path: str | os.PathLike[str], analyst: str | None = None, upgrade: bool = True) -> Case:
    """Open an existing case, upgrading an older schema (audited). Errors say what to do."""
    p = Path(path)
    if not p.exists():
        raise CaseError(f"{p}: no such case file; create it with `stanch new {p}`")
    if p.is_dir():
        raise CaseError(f"{p}: is a directory, not a case file")
    # The file is never opened but through SQLite: closing any other descriptor of it would drop the POSIX locks
    # this process's open connections hold (https://www.sqlite.org/howtocorrupt.html §2.2), and the console keeps
    # one open while it opens others; another process could then take the file for its own, checkpoint and reset
    # the WAL under it ("database disk image is malformed"; tests/hardening/test_concurrency.py).
    not_sqlite = f"{p}: not a stanch case (not an SQLite file); create one with `stanch new CASE`"
    try:
        conn = _connect(str(p), wal=False)
    except sqlite3.DatabaseError:
        raise CaseError(not_sqlite) from None
    try:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.DatabaseError:
            raise CaseError(not_sqlite) from None
        if mode != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        app = conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone() if "meta" in tables else None
        if app is None or app[0] != APP_NAME:
            raise CaseError(f"{p}: not a stanch case (no stanch meta table); create one with `stanch new CASE`")
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CaseError(
                f"{p}: case schema v{version} is newer than this stanch understands (v{SCHEMA_VERSION}); "
                "upgrade stanch (pip install -U stanch)"
            )
    except sqlite3.DatabaseError as e:
        conn.close()
        raise CaseError(f"{p}: not a readable SQLite case ({e}); check the file") from e
    except CaseError:
        conn.close()
        raise
    case = Case(str(p), conn, analyst)
    if version < SCHEMA_VERSION and upgrade:
        migrate(conn, version)
        with case.transaction():
            audit.append(conn, case.analyst, "case.migrate", {"from": version, "to": SCHEMA_VERSION})
    if upgrade:
        ensure_derived(conn)  # an ingest killed mid-way may have left indexes or full-text rows to build
    return case
