"""The timeline's windowed reads: a page of events after or before a (time, event id) cursor, optionally
filtered, in time order. Nothing here reads the whole table: the console holds one or two screens of rows and
asks for the next page as the cursor moves.

Filter syntax: casefile/timeline_filter.py.

How a page is found (the target: a keystroke to updated rows in under 150 ms on 10M events):

- no filter: the `events_ts_id` index, in order, from the cursor;
- a few credentials (`cred:` naming at most 16): their `events_credential_ts` / `events_subject` index ranges,
  merged;
- otherwise the full-text index lists the matching rowids: when there are at most `MATERIALIZE_CAP` of them
  their (time, id) keys are read and sorted once and kept (later pages and the count come from them); when
  there are more, a short ordered scan from the cursor checks each event (a dense filter fills a page within a
  few hundred events); when that does not fill the page either, the matches go to a temporary table and the
  time index is walked keeping only them (checked on the index entry, before the event is read); a short
  prefix whose full-text expansion is itself slow is answered by the ordered scan, which reports what it has
  found as it goes;
- typing on (a filter narrower than the last one read from the same cursor): the last read's rows are checked
  against the new filter and the read goes on from the last of them, so the gap before the wider filter's
  matches is never walked twice.

Every query can be stopped (the next keystroke) or given a deadline through SQLite's progress handler.
"""

from __future__ import annotations

import bisect
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from casefile.marks import marked_among
from casefile.timeline_filter import (
    Filter,
    Plan,
    compile_filter,
    parse_filter,
    refines,
    text_matches,
)
from casefile.timeutil import TimeError, to_micros, to_utc_iso

#: Rows a page holds by default.
PAGE = 60
#: At most this many full-text matches are turned into sorted keys for a page (about 3 µs each).
MATERIALIZE_CAP = 25_000
#: Seconds the full-text index first gets to list the matches (when they are few), then the ordered scan,
#: then the full-text index again, to put every match in a temporary table (a short prefix expands to many
#: words and takes longer; past this the ordered scan goes on instead).
FTS_QUICK_SECONDS = 0.01
PROBE_SECONDS = 0.02
FILL_SECONDS = 1.5

Key = tuple[int, str]  # (ts, event id): the timeline's order, unique (events_ts_id)

ROW_COLUMNS = ("rowid", "id", "ts", "time", "vendor", "action", "outcome", "credential_id", "subject_credential_id",
               "principal", "client", "src_ip", "user_agent", "method", "resource", "status", "source_id")
_COLS = ", ".join(ROW_COLUMNS)
#: What the raw-record view shows besides `raw`, in this order.
DETAIL_COLUMNS = ("id", "time", "vendor", "action", "outcome", "credential_id", "subject_credential_id",
                  "cred_keys", "subject_keys", "principal", "client", "src_ip", "user_agent", "country", "city",
                  "asn", "method", "resource", "status", "bytes", "rows", "vendor_type", "vendor_id", "request_id",
                  "session_id", "source_id", "line", "audit_seq")

_BIG = 1 << 62
_MEMBER = "stanch_tl_member"


class Stopped(Exception):
    """The caller asked the read to stop (a newer keystroke)."""


class _OutOfTime(Exception):
    """A query ran past its deadline."""


# -- rows and pages -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class EventRow:
    """One event as the timeline lists it."""

    rowid: int
    id: str
    ts: int
    time: str
    vendor: str
    action: str
    outcome: str | None
    credential_id: int | None
    subject_credential_id: int | None
    principal: str | None
    client: str | None
    src_ip: str | None
    user_agent: str | None
    method: str | None
    resource: str | None
    status: int | None
    source_id: int | None

    @property
    def key(self) -> Key:
        return (self.ts, self.id)


@dataclass(slots=True)
class Page:
    """Rows in time order. `more` says whether rows lie beyond them in the direction read (None: not known, the
    read stopped at its deadline, `resume` is where it got to). `how` names the strategy (for the benchmark)."""

    rows: list[EventRow]
    more: bool | None
    forward: bool = True
    complete: bool = True
    resume: Key | None = None
    how: str = ""


@dataclass(slots=True)
class _Hint:
    filter: Filter
    at: tuple[Key | None, bool, bool]  # (cursor, forward, inclusive)
    rows: list[EventRow]  # in the order read
    more: bool | None


def _rows(cursor: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]) -> list[EventRow]:
    return [EventRow(*r) for r in cursor]


def _bound(key: Key | None, forward: bool, inclusive: bool) -> tuple[str, list[Any]]:
    if key is None:
        return "1", []
    op = (">=" if inclusive else ">") if forward else ("<=" if inclusive else "<")
    return f"(ts, id) {op} (?, ?)", [key[0], key[1]]


def _order(forward: bool) -> str:
    return "ts, id" if forward else "ts DESC, id DESC"


class KeyCache:
    """Sorted (ts, id, rowid) keys of recent full-text filters, shared by the page and count readers."""

    def __init__(self, size: int = 6) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[Any, ...], list[tuple[int, str, int]]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> list[tuple[int, str, int]] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], keys: list[tuple[int, str, int]]) -> None:
        with self._lock:
            self._items[key] = keys
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def connect_reader(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A query-only connection to a case that any one thread at a time may use (the console's workers)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such case file")
    old = os.umask(0o077)  # a -shm file SQLite may create gets 0600, as the case's own
    try:
        conn = sqlite3.connect(str(p), isolation_level=None, timeout=30, check_same_thread=False)
    finally:
        os.umask(old)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


class Timeline:
    """Windowed reads over one connection. Thread-safe: one read at a time (a lock); a read in progress stops
    when its `stop()` turns true."""

    def __init__(self, conn: sqlite3.Connection, cache: KeyCache | None = None) -> None:
        self.conn = conn
        self.cache = cache if cache is not None else KeyCache()
        self.lock = threading.Lock()
        conn.create_function("stanch_tl_text", 2, text_matches, deterministic=True)
        self._stop: Callable[[], bool] | None = None
        self._deadline: float | None = None
        self._why = ""
        self._member_key: tuple[Any, ...] | None = None  # the filter whose matches temp.{_MEMBER} holds
        self._hint: _Hint | None = None  # the last read that started a filter

    @classmethod
    def open(cls, path: str | os.PathLike[str], cache: KeyCache | None = None) -> Timeline:
        """A Timeline on its own query-only connection to the case at `path`."""
        return cls(connect_reader(path), cache)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def forget(self) -> None:
        """Drop what this reader remembers about earlier filters (the case changed)."""
        self.cache.clear()
        self._member_key = None
        self._hint = None

    # -- running queries under a stop flag and a deadline ---------------------------------------------------

    def _tick(self) -> int:
        if self._stop is not None and self._stop():
            self._why = "stop"
            return 1
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._why = "deadline"
            return 1
        return 0

    @contextmanager
    def _running(self, stop: Callable[[], bool] | None) -> Iterator[None]:
        with self.lock:
            if stop is not None and stop():
                raise Stopped
            self._stop, self._deadline, self._why = stop, None, ""
            self.conn.set_progress_handler(self._tick, 2000)
            try:
                yield
            finally:
                self.conn.set_progress_handler(None, 0)
                self._stop = self._deadline = None

    def _q(self, sql: str, params: Sequence[Any] = (), deadline: float | None = None) -> list[tuple[Any, ...]]:
        self._deadline, self._why = deadline, ""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "interrupt" not in str(e):
                raise
            if self._why == "stop":
                raise Stopped from None
            raise _OutOfTime from None
        finally:
            self._deadline = None

    def _check_stop(self) -> None:
        if self._stop is not None and self._stop():
            raise Stopped

    # -- public reads ----------------------------------------------------------------------------------------

    def compile(self, text_or_filter: str | Filter) -> Plan:
        """Parse (if text) and compile a filter against this case."""
        flt = parse_filter(text_or_filter) if isinstance(text_or_filter, str) else text_or_filter
        with self.lock:
            return compile_filter(self.conn, flt)

    def page(self, plan: Plan, key: Key | None = None, *, forward: bool = True, inclusive: bool = False,
             limit: int = PAGE, stop: Callable[[], bool] | None = None,
             on_progress: Callable[[list[EventRow], Key], None] | None = None, remember: bool = True) -> Page:
        """Up to `limit` matching rows after `key` (`forward`) or before it, in time order. `key` None starts at
        the first event (forward) or the last (backward); `inclusive` includes `key` itself. `on_progress` gets
        the rows found so far while a long scan is still looking. Raises Stopped when `stop()` turns true.
        `remember` (the default) keeps this read's rows, so that a narrower filter read from the same cursor next
        (the responder typing on) checks them and goes on from the last instead of from the cursor; reads that
        extend a window pass False."""
        t0 = time.monotonic()
        with self._running(stop):
            hint = self._hint
            if (hint is not None and hint.at == (key, forward, inclusive) and not plan.impossible
                    and refines(plan.filter, hint.filter)):
                page = self._refine(plan, hint, forward, limit, on_progress, t0)
            else:
                page = self._page(plan, key, forward, inclusive, limit, on_progress, t0)
            if remember and page.complete and not plan.impossible:
                self._hint = _Hint(plan.filter, (key, forward, inclusive), list(page.rows), page.more)
        if not forward:
            page.rows.reverse()
        page.forward = forward
        return page

    def first(self, plan: Plan, **kw: Any) -> Page:
        """The first page."""
        return self.page(plan, None, forward=True, **kw)

    def last(self, plan: Plan, **kw: Any) -> Page:
        """The last page."""
        return self.page(plan, None, forward=False, **kw)

    def at(self, plan: Plan, ts: int, **kw: Any) -> Page:
        """The page starting at the first matching event at or after `ts` (µs)."""
        return self.page(plan, (ts, ""), forward=True, inclusive=True, **kw)

    def count(self, plan: Plan, *, deadline: float | None = None,
              stop: Callable[[], bool] | None = None) -> int | None:
        """How many events match (None when it could not be counted before `deadline`, a time.monotonic())."""
        with self._running(stop):
            try:
                return self._count(plan, deadline)
            except _OutOfTime:
                return None

    def locate(self, event_id: str, time_hint: str | None = None,
               stop: Callable[[], bool] | None = None) -> Key | None:
        """The (ts, id) key of an event, by id. With its stored time this is one index lookup; without, a scan
        of the time index (about a second on 10M events: pass the time when you have it)."""
        with self._running(stop):
            if time_hint:
                try:
                    ts = to_micros(to_utc_iso(time_hint))
                except (TimeError, ValueError):
                    ts = None
                if ts is not None:
                    row = self._q("SELECT ts, id FROM events WHERE ts = ? AND id = ?", (ts, event_id))
                    if row:
                        return int(row[0][0]), str(row[0][1])
            row = self._q("SELECT ts, id FROM events INDEXED BY events_ts_id WHERE id = ?", (event_id,))
            return (int(row[0][0]), str(row[0][1])) if row else None

    def flags(self, rows: Sequence[EventRow]) -> dict[str, tuple[bool, int]]:
        """Event id -> (marked, number of notes) for `rows`."""
        ids = [r.id for r in rows]
        with self.lock:
            return event_flags(self.conn, ids)

    def detail(self, rowid: int) -> dict[str, Any] | None:
        """Everything the raw-record view shows about one event."""
        with self.lock:
            return event_detail(self.conn, rowid)

    def span(self) -> tuple[str | None, str | None]:
        """The first and last event times."""
        with self.lock:
            lo = self.conn.execute("SELECT time FROM events ORDER BY ts, id LIMIT 1").fetchone()
            hi = self.conn.execute("SELECT time FROM events ORDER BY ts DESC, id DESC LIMIT 1").fetchone()
        return (lo[0] if lo else None, hi[0] if hi else None)

    # -- strategies ------------------------------------------------------------------------------------------

    def _refine(self, plan: Plan, hint: _Hint, forward: bool, limit: int,
                on_progress: Callable[[list[EventRow], Key], None] | None, t0: float) -> Page:
        """A narrower filter than the last read's, from the same cursor: its matches up to the last read's last
        row are among that read's rows (checked here); the rest is read from there on."""
        old = hint.rows
        matched: list[EventRow] = []
        if old:
            ok = {r[0] for r in self._q(f"SELECT rowid FROM events WHERE rowid IN ({','.join('?' * len(old))})"
                                        f" AND {plan.predicate}", [*(r.rowid for r in old), *plan.params])}
            matched = [r for r in old if r.rowid in ok]
        if len(matched) > limit:
            return Page(matched[:limit], True, how="refined")
        if hint.more is False:
            return Page(matched, False, how="refined")
        if len(matched) == limit:
            return Page(matched, None, how="refined")
        progress = on_progress
        if on_progress is not None and matched:
            def progress(rows: list[EventRow], at: Key) -> None:
                on_progress(matched + rows if forward else rows + matched[::-1], at)
        rest = self._page(plan, old[-1].key, forward, False, limit - len(matched), progress, t0)
        return Page(matched + rest.rows, rest.more, complete=rest.complete, resume=rest.resume,
                    how=f"refined+{rest.how}")

    def _page(self, plan: Plan, key: Key | None, forward: bool, inclusive: bool, limit: int,
              on_progress: Callable[[list[EventRow], Key], None] | None, t0: float) -> Page:
        if plan.impossible:
            return Page([], False, how="nothing")
        if plan.empty:
            cond, params = _bound(key, forward, inclusive)
            rows = _rows(self._q(f"SELECT {_COLS} FROM events INDEXED BY events_ts_id WHERE {cond}"
                                 f" ORDER BY {_order(forward)} LIMIT ?", [*params, limit + 1]))
            return Page(rows[:limit], len(rows) > limit, how="index")
        if plan.cred_ids is not None:
            return self._by_credentials(plan, key, forward, inclusive, limit)
        keys = self.cache.get(plan.key)
        if keys is not None:
            return self._from_keys(keys, key, forward, inclusive, limit, "keys")
        if plan.fts is not None and self._member_key == plan.key:
            return self._member_walk(plan, key, forward, inclusive, limit)
        if plan.fts is None:
            return self._scan(plan, key, forward, inclusive, limit, None, on_progress)
        # Few matches in all? Their keys, sorted once (a rare address or key answers here in a millisecond).
        keys, _ = self._materialize(plan, MATERIALIZE_CAP, time.monotonic() + FTS_QUICK_SECONDS)
        if keys is not None:
            return self._from_keys(keys, key, forward, inclusive, limit, "fts")
        # Dense near the cursor? A short ordered scan fills the page.
        probe = self._scan(plan, key, forward, inclusive, limit, time.monotonic() + PROBE_SECONDS, None)
        if probe.complete:
            return probe
        assert probe.resume is not None
        if on_progress is not None and probe.rows:
            on_progress(probe.rows[:] if forward else probe.rows[::-1], probe.resume)
        # Not dense here: every match goes to a temporary table (one full-text query, given longer: a short
        # prefix expands to many words); few of them are sorted by time once, many are kept while the time index
        # is walked (each index entry checked against them before its event is read).
        try:
            n = self._fill_member(plan, time.monotonic() + FILL_SECONDS)
        except _OutOfTime:  # the full-text query itself is too slow (a one-letter prefix): scan on, in order
            return self._scan(plan, probe.resume, forward, False, limit, None, on_progress, found=probe.rows)
        if n <= MATERIALIZE_CAP:
            keys = sorted(self._q(f"SELECT ts, id, rowid FROM events WHERE rowid IN temp.{_MEMBER} AND {plan.rest}",
                                  plan.rest_params))
            self.cache.put(plan.key, keys)
            return self._from_keys(keys, key, forward, inclusive, limit, "fts")
        page = self._member_walk(plan, key, forward, inclusive, limit)
        page.how = "fts+walk"
        return page

    def _fill_member(self, plan: Plan, deadline: float | None = None) -> int:
        """Put the full-text matches of `plan` in this connection's temporary membership table; their number."""
        assert plan.fts is not None
        self._member_key = None
        self.conn.execute("PRAGMA query_only = OFF")  # the temp schema only; the case stays untouched
        try:
            self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_MEMBER}(r INTEGER PRIMARY KEY)")
            self.conn.execute(f"DELETE FROM temp.{_MEMBER}")
            self._q(f"INSERT INTO temp.{_MEMBER} SELECT rowid FROM events_fts WHERE events_fts MATCH ?", (plan.fts,),
                    deadline)
            self._member_key = plan.key
            return int(self.conn.execute(f"SELECT count(*) FROM temp.{_MEMBER}").fetchone()[0])
        finally:
            self.conn.execute("PRAGMA query_only = ON")

    def _member_walk(self, plan: Plan, key: Key | None, forward: bool, inclusive: bool, limit: int) -> Page:
        lo, lo_p = _bound(key, forward, inclusive)
        rows = _rows(self._q(f"SELECT {_COLS} FROM events INDEXED BY events_ts_id WHERE {lo} AND rowid IN"
                             f" temp.{_MEMBER} AND {plan.rest} ORDER BY {_order(forward)} LIMIT ?",
                             [*lo_p, *plan.rest_params, limit + 1]))
        return Page(rows[:limit], len(rows) > limit, how="walk")

    def _scan(self, plan: Plan, key: Key | None, forward: bool, inclusive: bool, limit: int,
              deadline: float | None, on_progress: Callable[[list[EventRow], Key], None] | None,
              found: list[EventRow] | None = None) -> Page:
        """Walk the time index from `key` in growing windows, checking each event against the filter."""
        found = list(found or [])
        cur, incl = key, inclusive
        window = 256
        order = _order(forward)
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return Page(found, None, complete=False, resume=cur if cur is not None else _start(forward),
                            how="scan")
            lo, lo_p = _bound(cur, forward, incl)
            try:
                edge = self._q(f"SELECT ts, id FROM events INDEXED BY events_ts_id WHERE {lo} ORDER BY {order}"
                               " LIMIT 1 OFFSET ?", [*lo_p, window - 1], deadline)
                if edge:
                    hi, hi_p = _bound((int(edge[0][0]), str(edge[0][1])), not forward, True)
                else:
                    hi, hi_p = "1", []
                rows = _rows(self._q(f"SELECT {_COLS} FROM events INDEXED BY events_ts_id WHERE {lo} AND {hi}"
                                     f" AND {plan.predicate} ORDER BY {order} LIMIT ?",
                                     [*lo_p, *hi_p, *plan.params, limit + 1 - len(found)], deadline))
            except _OutOfTime:
                return Page(found, None, complete=False, resume=cur if cur is not None else _start(forward),
                            how="scan")
            found.extend(rows)
            if len(found) > limit:
                return Page(found[:limit], True, how="scan")
            if not edge:
                return Page(found, False, how="scan")
            cur, incl = (int(edge[0][0]), str(edge[0][1])), False
            self._check_stop()
            if on_progress is not None:
                on_progress(found[:] if forward else found[::-1], cur)
            window = min(window * 4, 65536)

    def _materialize(self, plan: Plan, cap: int, deadline: float | None
                     ) -> tuple[list[tuple[int, str, int]] | None, str]:
        """The sorted (ts, id, rowid) keys of every match, from the full-text index, and "ok"; or None and why:
        "many" (more than `cap` matches) or "slow" (the full-text query ran past `deadline`)."""
        hit = self.cache.get(plan.key)
        if hit is not None:
            return hit, "ok"
        assert plan.fts is not None
        self._deadline, self._why = deadline, ""
        rowids: list[int] = []
        try:
            cur = self.conn.execute("SELECT rowid FROM events_fts WHERE events_fts MATCH ?", (plan.fts,))
            while chunk := cur.fetchmany(8192):
                rowids.extend(r[0] for r in chunk)
                if len(rowids) > cap:
                    return None, "many"
        except sqlite3.OperationalError as e:
            if "interrupt" not in str(e):
                raise
            if self._why == "stop":
                raise Stopped from None
            return None, "slow"
        finally:
            self._deadline = None
        # Then the keys (bounded by `cap` lookups: no deadline, a page is close).
        keys: list[tuple[int, str, int]] = []
        for i in range(0, len(rowids), 800):
            part = rowids[i:i + 800]
            keys.extend(self._q(f"SELECT ts, id, rowid FROM events WHERE rowid IN ({','.join('?' * len(part))})"
                                f" AND {plan.rest}", [*part, *plan.rest_params]))
        keys.sort()
        self.cache.put(plan.key, keys)
        return keys, "ok"

    def _from_keys(self, keys: list[tuple[int, str, int]], key: Key | None, forward: bool, inclusive: bool,
                   limit: int, how: str) -> Page:
        if forward:
            if key is None:
                i = 0
            else:
                i = bisect.bisect_left(keys, (key[0], key[1], -1)) if inclusive else \
                    bisect.bisect_right(keys, (key[0], key[1], _BIG))
            chosen = keys[i:i + limit]
            more = i + limit < len(keys)
        else:
            if key is None:
                j = len(keys)
            else:
                j = bisect.bisect_right(keys, (key[0], key[1], _BIG)) if inclusive else \
                    bisect.bisect_left(keys, (key[0], key[1], -1))
            chosen = keys[max(0, j - limit):j][::-1]
            more = j - limit > 0
        rowids = [k[2] for k in chosen]
        by_rowid = {}
        if rowids:
            got = self._q(f"SELECT {_COLS} FROM events WHERE rowid IN ({','.join('?' * len(rowids))})", rowids)
            by_rowid = {r[0]: r for r in got}
        return Page(_rows([by_rowid[r] for r in rowids if r in by_rowid]), more, how=how)

    def _by_credentials(self, plan: Plan, key: Key | None, forward: bool, inclusive: bool, limit: int) -> Page:
        assert plan.cred_ids is not None
        bound, bound_p = _bound(key, forward, inclusive)
        ts_cond, ts_p = ("1", []) if key is None else (("ts >= ?" if forward else "ts <= ?"), [key[0]])
        merged: dict[int, tuple[Any, ...]] = {}
        for cid in plan.cred_ids:
            for col in ("credential_id", "subject_credential_id"):
                for r in self._q(f"SELECT {_COLS} FROM events WHERE {col} = ? AND {ts_cond} AND {bound}"
                                 f" AND {plan.others} ORDER BY {_order(forward)} LIMIT ?",
                                 [cid, *ts_p, *bound_p, *plan.others_params, limit + 1]):
                    merged[r[0]] = r
                self._check_stop()
        rows = sorted(merged.values(), key=lambda r: (r[2], r[1]), reverse=not forward)
        return Page(_rows(rows[:limit]), len(rows) > limit, how="credential")

    def _count(self, plan: Plan, deadline: float | None) -> int:
        if plan.impossible:
            return 0
        if plan.empty:
            return int(self._q("SELECT count(*) FROM events", (), deadline)[0][0])
        keys = self.cache.get(plan.key)
        if keys is not None:
            return len(keys)
        if plan.cred_ids is not None:
            return int(self._q(f"SELECT count(*) FROM events WHERE {plan.cred_sql} AND {plan.others}",
                               [*plan.cred_params, *plan.others_params], deadline)[0][0])
        if plan.fts is not None:
            if plan.rest == "1":  # words only: the full-text index counts exactly, without touching the events
                return int(self._q("SELECT count(*) FROM events_fts WHERE events_fts MATCH ?", (plan.fts,),
                                   deadline)[0][0])
            return int(self._q(f"SELECT count(*) FROM events WHERE rowid IN (SELECT rowid FROM events_fts WHERE"
                               f" events_fts MATCH ?) AND {plan.rest}", [plan.fts, *plan.rest_params], deadline)[0][0])
        return int(self._q(f"SELECT count(*) FROM events WHERE {plan.predicate}", plan.params, deadline)[0][0])


def _start(forward: bool) -> Key:
    return (-_BIG, "") if forward else (_BIG, "")


# -- flags, detail, times ---------------------------------------------------------------------------------------


def event_flags(conn: sqlite3.Connection, event_ids: Sequence[str]) -> dict[str, tuple[bool, int]]:
    """Event id -> (marked as evidence, notes on it)."""
    if not event_ids:
        return {}
    marked = marked_among(conn, event_ids)
    refs = [f"event:{i}" for i in event_ids]
    notes: dict[str, int] = {}
    for i in range(0, len(refs), 500):
        part = refs[i:i + 500]
        for ref, n in conn.execute(f"SELECT on_ref, count(*) FROM notes WHERE on_ref IN ({','.join('?' * len(part))})"
                                   " GROUP BY on_ref", part):
            notes[ref[6:]] = int(n)
    return {i: (i in marked, notes.get(i, 0)) for i in event_ids if i in marked or i in notes}


def event_detail(conn: sqlite3.Connection, rowid: int) -> dict[str, Any] | None:
    """One event's canonical fields (DETAIL_COLUMNS), its redacted `raw` record, whether it is marked, and the
    notes on it."""
    row = conn.execute(f"SELECT {', '.join(DETAIL_COLUMNS)}, raw FROM events WHERE rowid = ?", (rowid,)).fetchone()
    if row is None:
        return None
    fields = dict(zip(DETAIL_COLUMNS, row[:-1], strict=True))
    notes = [{"time": t, "who": w, "text": x} for t, w, x in conn.execute(
        "SELECT time, who, text FROM notes WHERE on_ref = ? ORDER BY rowid", (f"event:{fields['id']}",))]
    return {"rowid": rowid, "fields": fields, "raw": row[-1], "marked": bool(marked_among(conn, [fields["id"]])),
            "notes": notes}


def raw_lines(raw: str | None) -> list[str]:
    """The raw record as lines to show: pretty-printed when it is JSON, else as stored. Control characters are
    left to the caller's literal rendering (JSON escapes them anyway)."""
    if raw is None:
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.splitlines() or [raw]
    if not isinstance(doc, dict | list):
        return raw.splitlines() or [raw]
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode().splitlines()


_PARTIAL = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2})([.,]\d{1,9})?)?)?)?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?$")


def parse_jump(text: str) -> int:
    """A time to jump to, in µs: ISO 8601 or any prefix of it (`2025-08-12`, `2025-08-12T14`, `2025-08-12 14:30`,
    with an optional offset; no offset means UTC), or whatever else casefile.timeutil reads (epoch numbers)."""
    s = text.strip()
    if not s:
        raise TimeError("no time given; type e.g. 2025-08-12T14")
    m = _PARTIAL.match(s)
    try:
        if m:
            y, mo, d, h, mi, sec, frac, tz = m.groups()
            iso = (f"{y}-{int(mo or 1):02d}-{int(d or 1):02d}T{int(h or 0):02d}:{int(mi or 0):02d}:"
                   f"{int(sec or 0):02d}{frac.replace(',', '.') if frac else ''}{tz or 'Z'}")
            return to_micros(to_utc_iso(iso))
        if re.fullmatch(r"\d{9,19}(\.\d+)?", s):
            return to_micros(to_utc_iso(s))
    except (TimeError, ValueError) as e:
        raise TimeError(f"not a time: {s!r}") from e
    raise TimeError(f"not a time: {s!r}; type ISO 8601 or a prefix of it (2025-08-12, 2025-08-12T14)")
