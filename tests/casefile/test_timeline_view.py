"""`casefile.timeline`: windowed pages in (time, id) order from a cursor both ways, the filter language, its
strategies agreeing with each other and with a brute-force reading of the same filter, quoting that lets no
typed text become FTS5 or SQL syntax, counts, jumps to a time; and `casefile.marks`, audited."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from casefile import audit, timeline
from casefile.audit import verify
from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from casefile.marks import MARK_COLUMNS, is_marked, marked_among, marked_events, set_mark, toggle_mark
from casefile.schema import FTS_DOC_SQL
from casefile.timeline import (
    Filter,
    Stopped,
    Timeline,
    connect_reader,
    parse_filter,
    parse_jump,
    raw_lines,
    refines,
    text_matches,
)
from casefile.timeutil import TimeError, to_micros
from tests.casefile import toy  # noqa: F401  (registers toy-jsonl)

IPS = ["192.0.2.7", "192.0.2.70", "198.51.100.9", "203.0.113.5", "10.1.2.3"]
ACTIONS = ["api.call", "token.issue", "token.refresh", "auth.fail", "secret.read"]
RESOURCES = ["/services/data/v60.0/query", "/services/data/v60.0/sobjects/Case/5001", "/v1/secret/data/app",
             "/oauth2/token", "/api/Users"]


def _records(n: int, start: int, tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        # several events share a second, so the id breaks ties
        sec = start + i // 3
        d: dict[str, Any] = {"t": f"2025-08-{12 + sec // 86400:02d}T{(sec // 3600) % 24:02d}:{(sec // 60) % 60:02d}:"
                                  f"{sec % 60:02d}Z",
                             "id": f"{tag}{i:04d}", "ip": IPS[i % len(IPS)], "action": ACTIONS[(i // 2) % len(ACTIONS)],
                             "res": RESOURCES[i % len(RESOURCES)], "ua": "curl/8.5" if i % 4 else "Python/3.11 aiohttp/3.12",
                             "principal": "Zoë Müller" if i % 11 == 0 else f"svc-{i % 6}"}
        if i % 5 != 4:
            d["keys"] = [f"sha256/16:{(i % 7):016x}" if i % 7 else "jti:https://idp.example:abc def"]
        if i % 29 == 3:
            d["subject"] = [f"sha256/16:{(i % 3) + 100:016x}"]
        out.append(d)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tl")
    a, b = d / "a.jsonl", d / "b.jsonl"
    # two sources whose times interleave: rowid order is not time order
    a.write_text("\n".join(orjson.dumps(r).decode() for r in _records(240, 0, "a")) + "\n")
    b.write_text("\n".join(orjson.dumps(r).decode() for r in _records(120, 30, "b")) + "\n")
    path = d / "t.stanch"
    with create_case(path, analyst="alice") as c:
        ingest(c, [str(a)], format_name="toy-jsonl")
        ingest(c, [str(b)], format_name="toy-jsonl")
    return path


@pytest.fixture
def tl(built: Path) -> Iterator[Timeline]:
    t = Timeline.open(built)
    yield t
    t.close()


def _all(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cols = ("rowid", "id", "ts", "doc", "src_ip", "action", "vendor", "source_id", "credential_id",
            "subject_credential_id")
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(
        f"SELECT rowid, id, ts, {FTS_DOC_SQL}, src_ip, action, vendor, source_id, credential_id,"
        " subject_credential_id FROM events ORDER BY ts, id")]


def _reference(tl: Timeline, text: str) -> list[str]:
    """The filter read the slow, obvious way: every event checked in Python."""
    flt = parse_filter(text)
    plan = tl.compile(flt)
    if plan.impossible:
        return []
    cred_ids: set[int] | None = None
    if flt.creds:
        cred_ids = {int(r[0]) for r in tl.conn.execute(plan.cred_set, plan.cred_set_params)}
    out = []
    for e in _all(tl.conn):
        if flt.words and not text_matches(e["doc"], "\x1f".join(flt.words)):
            continue
        if flt.ips and not any((e["src_ip"] or "").lower().startswith(v.lower()) for v in flt.ips):
            continue
        if flt.actions and not any(e["action"].lower().startswith(v.lower()) for v in flt.actions):
            continue
        if flt.vendors and not any(e["vendor"].lower().startswith(v.lower()) for v in flt.vendors):
            continue
        if flt.sources and e["source_id"] not in flt.sources:
            continue
        if cred_ids is not None and e["credential_id"] not in cred_ids and e["subject_credential_id"] not in cred_ids:
            continue
        out.append(e["id"])
    return out


def _forward(tl: Timeline, text: str, limit: int = 7) -> list[str]:
    plan = tl.compile(text)
    ids: list[str] = []
    page = tl.first(plan, limit=limit)
    while True:
        ids += [r.id for r in page.rows]
        assert len(page.rows) <= limit
        if not page.more:
            return ids
        page = tl.page(plan, page.rows[-1].key, limit=limit, remember=False)


def _backward(tl: Timeline, text: str, limit: int = 7) -> list[str]:
    plan = tl.compile(text)
    ids: list[str] = []
    page = tl.last(plan, limit=limit)
    while True:
        ids = [r.id for r in page.rows] + ids
        if not page.more:
            return ids
        page = tl.page(plan, page.rows[0].key, forward=False, limit=limit, remember=False)


def test_pages_cover_every_event_in_time_then_id_order_both_ways(tl: Timeline) -> None:
    order = [r[0] for r in tl.conn.execute("SELECT id FROM events ORDER BY ts, id")]
    assert len(order) == 360
    rowid_order = [r[0] for r in tl.conn.execute("SELECT id FROM events ORDER BY rowid")]
    assert order != rowid_order  # the two sources interleave in time
    assert _forward(tl, "") == order
    assert _backward(tl, "") == order
    first = tl.first(tl.compile(""), limit=5)
    assert [r.id for r in first.rows] == order[:5] and first.more is True
    assert tl.last(tl.compile(""), limit=500).more is False


def test_a_cursor_is_exclusive_and_at_is_inclusive(tl: Timeline) -> None:
    order = [(r[0], r[1]) for r in tl.conn.execute("SELECT ts, id FROM events ORDER BY ts, id")]
    plan = tl.compile("")
    k = order[40]
    assert [r.key for r in tl.page(plan, k, limit=3).rows] == order[41:44]
    assert [r.key for r in tl.page(plan, k, forward=False, limit=3).rows] == order[37:40]
    assert [r.key for r in tl.page(plan, k, inclusive=True, limit=2).rows] == order[40:42]
    # `at` a time: the first event at or after it, even between two events
    assert tl.at(plan, k[0], limit=1).rows[0].key == next(o for o in order if o[0] >= k[0])
    assert tl.at(plan, k[0] + 1, limit=1).rows[0].ts > k[0]
    assert tl.at(plan, order[-1][0] + 1).rows == []


FILTERS = [
    "192.0.2.7", "192.0.2", "ip:192.0.2.7", "ip:192.0.2.7 ip:10.1", "token.", "action:token", "action:TOKEN.r",
    "vendor:to", "source:2", "source:1 192.0.2.70", "services data", "/services/data/v60.0/sobjects", "aiohttp",
    "cred:1", "cred:sha256/16:0000000000000003", "cred:sha256/16:000", "cred:00000000000000", 'cred:"jti:https://idp.example:abc def"',
    "cred:2 cred:3", "zoe", "müller", "MULLER", "svc-3 token.issue", "curl ip:198", "nothing-like-this", "svc",
]


@pytest.mark.parametrize("text", FILTERS)
def test_filters_match_what_a_brute_force_reading_matches(tl: Timeline, text: str) -> None:
    expected = _reference(tl, text)
    assert _forward(tl, text) == expected
    assert _backward(tl, text, limit=5) == expected
    n = tl.count(tl.compile(text))
    assert n == len(expected)


@pytest.mark.parametrize("text", ["192.0.2.7", "token.", "aiohttp", "svc-3 token.issue", "curl ip:198",
                                  "action:token", "cred:sha256/16:000"])
@pytest.mark.parametrize("strategy", ["fts", "scan", "walk"])
def test_every_strategy_gives_the_same_pages(built: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                             strategy: str) -> None:
    if strategy == "scan":  # too many full-text matches to sort: the ordered scan
        monkeypatch.setattr(timeline, "MATERIALIZE_CAP", 0)
    elif strategy == "walk":  # and the scan gives up at once: the time index walked with the matches
        monkeypatch.setattr(timeline, "MATERIALIZE_CAP", 0)
        monkeypatch.setattr(timeline, "PROBE_SECONDS", -1.0)
    t = Timeline.open(built)
    try:
        expected = _reference(t, text)
        assert _forward(t, text, limit=4) == expected
        t.forget()
        assert _backward(t, text, limit=6) == expected
    finally:
        t.close()


def test_the_strategies_are_the_ones_meant(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Timeline.open(built)
    assert t.first(t.compile("")).how == "index"
    t.forget()  # else the next read starts from this one's rows (it narrows it): "refined+credential"
    assert t.first(t.compile("cred:1")).how == "credential"
    t.forget()
    assert t.first(t.compile("192.0.2.70")).how == "fts"  # few matches: their keys sorted once
    assert t.page(t.compile("192.0.2.70"), (0, "")).how == "keys"  # and kept for the next page
    monkeypatch.setattr(timeline, "MATERIALIZE_CAP", 10)
    t.forget()
    assert t.first(t.compile("curl"), limit=5).how == "scan"  # many, dense: the short scan fills the page
    monkeypatch.setattr(timeline, "PROBE_SECONDS", -1.0)
    t.forget()
    assert t.first(t.compile("curl")).how == "fts+walk"
    assert t.page(t.compile("curl"), (0, "")).how == "walk"
    t.close()


INJECTIONS = ['"); DROP TABLE events; --', "NEAR(", "NEAR(a b, 2)", '"', '""', "*", "a OR b", "a AND NOT b", "'",
              "' OR 1=1 --", "%", "_", "ip:%", "ip:_", "action:%'", "vendor:\\", "{col}: x", "^x", "a:b:c", "-",
              "cred:' OR 1=1", "cred:%", "source:1; DROP TABLE events", "(", ")", "x*", "::", "\x00", "ip:\"", "events_fts"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_typed_text_is_never_query_syntax(tl: Timeline, text: str) -> None:
    expected = _reference(tl, text)
    assert _forward(tl, text) == expected
    assert tl.count(tl.compile(text)) == len(expected)
    assert tl.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 360


def test_injections_match_literally_or_not_at_all(tl: Timeline) -> None:
    assert _forward(tl, '"); DROP TABLE events; --') == []
    assert _forward(tl, "NEAR(") == []
    # LIKE wildcards typed in a field are characters, not wildcards
    assert _forward(tl, "ip:%") == [] and _forward(tl, "ip:_") == []
    plan = tl.compile('x" OR "y')
    assert plan.fts is not None and plan.fts.count('"') % 2 == 0
    assert all(part.startswith('"') and part.endswith('"*') for part in plan.fts.split(" AND "))


def test_a_bad_field_value_is_a_problem_that_matches_nothing(tl: Timeline) -> None:
    plan = tl.compile("source:abc")
    assert plan.impossible and "source:abc" in plan.problems[0]
    assert tl.first(plan).rows == []
    plan = tl.compile("cred:sha256:ffffffffffffffffffffff")
    assert plan.impossible and "no credential" in plan.problems[0]
    assert tl.count(plan) == 0


def test_parse_filter_fields_words_and_quotes() -> None:
    f = parse_filter('IP:192.0.2.7 cred:"jti:x y" Action:token vendor:okta source:3 hello /a/b-c "two words" ip:')
    assert f.ips == ("192.0.2.7",) and f.creds == ("jti:x y",) and f.actions == ("token",)
    assert f.vendors == ("okta",) and f.sources == (3,)
    assert f.words == ("hello", "a", "b-c", "two", "words")
    assert parse_filter("").empty and parse_filter("ip: ").empty
    assert parse_filter("sha256:ab12").words == ("sha256:ab12",)  # not a field: a word with a colon
    assert parse_filter('cred:"unterminated').creds == ("unterminated",)


def test_refines() -> None:
    def r(new: str, old: str) -> bool:
        return refines(parse_filter(new), parse_filter(old))

    assert r("185.2", "185") and r("185 ab", "185") and r("anything", "")
    assert not r("18", "185") and not r("", "185")
    assert r("ip:10.1", "ip:10") and not r("ip:10", "ip:10.1") and not r("x", "ip:10")
    assert r("source:1", "source:1 source:2") and not r("source:1 source:2", "source:1")
    assert r("cred:5 x", "cred:5") and not r("cred:5", "cred:6")


def test_typing_on_reads_from_the_wider_filters_first_match(tl: Timeline) -> None:
    fresh = Timeline.open(tl.conn.execute("PRAGMA database_list").fetchone()[2])
    for text in ["1", "19", "192", "192.", "192.0.2.7", "192.0.2.70", "192.0.2.70 z", "192.0.2.70 zo"]:
        got = [r.id for r in tl.first(tl.compile(text), limit=10).rows]
        fresh.forget()
        assert got == [r.id for r in fresh.first(fresh.compile(text), limit=10).rows] == _reference(tl, text)[:10]
    assert tl.first(tl.compile("192.0.2.70 zoq")).rows == []
    assert tl.first(tl.compile("192.0.2.70 zoqx")).how == "refined"  # the wider one matched nothing
    assert tl.first(tl.compile("19"), limit=10).how in ("fts", "keys")
    assert tl.first(tl.compile("192"), limit=10).how.startswith("refined")  # its first rows came from "19"


@pytest.mark.parametrize("cap", [0, 10_000])
def test_typing_on_agrees_with_a_fresh_read_at_every_key(built: Path, monkeypatch: pytest.MonkeyPatch,
                                                         cap: int) -> None:
    monkeypatch.setattr(timeline, "MATERIALIZE_CAP", cap)
    typing, fresh = Timeline.open(built), Timeline.open(built)
    for word in ["192.0.2.70", "svc-3 token.issue", "ip:198.51 curl", "cred:sha256/16:0000000000000003 api"]:
        for i in range(1, len(word) + 1):
            text = word[:i]
            for limit in (3, 50):
                fresh.forget()
                want = [r.id for r in fresh.first(fresh.compile(text), limit=limit).rows]
                page = typing.first(typing.compile(text), limit=limit)
                assert [r.id for r in page.rows] == want == _reference(fresh, text)[:limit], (text, page.how)
                back = typing.last(typing.compile(text), limit=limit)
                assert [r.id for r in back.rows] == _reference(fresh, text)[-limit:], (text, back.how)
    typing.close()
    fresh.close()
    fresh.close()


def test_a_stopped_read_raises_stopped(tl: Timeline) -> None:
    with pytest.raises(Stopped):
        tl.first(tl.compile("curl"), stop=lambda: True)
    assert tl.first(tl.compile("curl"), limit=3).rows  # the reader is still usable


def test_progress_reports_rows_found_so_far(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeline, "PROBE_SECONDS", -1.0)
    seen: list[int] = []
    t = Timeline.open(built)
    page = t.first(t.compile("source:2"), limit=200, on_progress=lambda rows, at: seen.append(len(rows)))
    assert len(page.rows) == 120 and seen and seen == sorted(seen)
    t.close()


def test_locate_flags_and_detail(built: Path, tl: Timeline) -> None:
    row = tl.conn.execute("SELECT ts, id, time, rowid FROM events ORDER BY ts DESC LIMIT 1").fetchone()
    assert tl.locate(row[1]) == (row[0], row[1])
    assert tl.locate(row[1], row[2]) == (row[0], row[1])
    assert tl.locate("toy:nope") is None
    with create_case_open(built) as c:
        c.add_note("look here", on_ref=f"event:{row[1]}")
        set_mark(c, row[1], True, rowid=row[3])
    assert tl.flags(tl.last(tl.compile(""), limit=1).rows) == {row[1]: (True, 1)}
    d = tl.detail(row[3])
    assert d is not None and d["marked"] and d["notes"][0]["text"] == "look here"
    assert d["fields"]["id"] == row[1] and orjson.loads(d["raw"])["id"]
    assert tl.detail(10**9) is None
    with create_case_open(built) as c:
        set_mark(c, row[1], False, rowid=row[3])


def create_case_open(path: Path) -> Any:
    from casefile.case import open_case

    return open_case(path, analyst="alice")


def test_count_and_span(tl: Timeline) -> None:
    assert tl.count(tl.compile("")) == 360
    assert tl.count(tl.compile("source:2")) == 120
    assert tl.count(tl.compile("cred:1")) == len(_reference(tl, "cred:1"))
    first, last = tl.span()
    assert first is not None and last is not None and first < last


def test_reader_connection_cannot_write(built: Path) -> None:
    conn = connect_reader(built)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM events")
    conn.close()
    with pytest.raises(FileNotFoundError):
        connect_reader(built.parent / "missing.stanch")


@pytest.mark.parametrize(("text", "iso"), [
    ("2025-08-12", "2025-08-12T00:00:00Z"),
    ("2025-08-12T14", "2025-08-12T14:00:00Z"),
    ("2025-08-12 14:30", "2025-08-12T14:30:00Z"),
    ("2025-08-12T14:30:05.25Z", "2025-08-12T14:30:05.25Z"),
    ("2025-08-12T16:00+02:00", "2025-08-12T14:00:00Z"),
    ("2025", "2025-01-01T00:00:00Z"),
    ("2025-8", "2025-08-01T00:00:00Z"),
    ("1755000000", "2025-08-12T12:00:00Z"),
])
def test_parse_jump(text: str, iso: str) -> None:
    assert parse_jump(text) == to_micros(iso)


@pytest.mark.parametrize("text", ["", "yesterday", "2025-13-01", "2025-02-30", "2025-08-12T25", "12:00"])
def test_parse_jump_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(TimeError):
        parse_jump(text)


def test_raw_lines() -> None:
    assert raw_lines(None) == []
    assert raw_lines('{"a": {"b": "[bold]x[/]"}}') == ["{", '  "a": {', '    "b": "[bold]x[/]"', "  }", "}"]
    assert raw_lines('{"esc": "\\u001b[31mred"}')[1] == '  "esc": "\\u001b[31mred"'  # JSON keeps it escaped
    assert raw_lines("GET /x HTTP/1.1\nline 2") == ["GET /x HTTP/1.1", "line 2"]
    assert raw_lines("42") == ["42"]


def test_text_matches_token_prefixes() -> None:
    assert text_matches("nginx api.call 192.0.2.70", "192.0.2.7")
    assert not text_matches("nginx api.call 10.192.0.2", "192.0")  # inside a token is not a prefix
    assert text_matches("Zoë Müller", "muller") and text_matches("Zoë", "zoe")
    assert not text_matches(None, "x") and not text_matches("a b", "a\x1fc")
    assert Filter().empty


# -- marks ---------------------------------------------------------------------------------------------------


def test_marks_toggle_are_audited_and_keep_their_history(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text("\n".join(orjson.dumps({"t": f"2025-08-17T11:15:{i:02d}Z", "id": f"e{i}"}).decode()
                           for i in range(5)) + "\n")
    with create_case(tmp_path / "m.stanch", analyst="alice") as c:
        ingest(c, [str(f)], format_name="toy-jsonl")
        assert toggle_mark(c, "toy:e1") is True
        assert toggle_mark(c, "toy:e2") is True
        assert toggle_mark(c, "toy:e1") is False
        assert marked_among(c.conn, ["toy:e1", "toy:e2", "toy:e3"]) == {"toy:e2"}
        assert is_marked(c.conn, "toy:e2") and not is_marked(c.conn, "toy:e1")
        assert [m[0] for m in marked_events(c.conn)] == ["toy:e2"]
        rows = c.conn.execute("SELECT event_id, marked, who FROM marks ORDER BY rowid").fetchall()
        assert rows == [("toy:e1", 1, "alice"), ("toy:e2", 1, "alice"), ("toy:e1", 0, "alice")]
        ops = c.conn.execute("SELECT operation, tbl, row_lo, row_hi, details FROM audit WHERE tbl = 'marks'"
                             " ORDER BY seq").fetchall()
        assert [(o[0], o[2], o[3]) for o in ops] == [("mark", 1, 1), ("mark", 2, 2), ("unmark", 3, 3)]
        assert orjson.loads(ops[0][4]) == {"event": "toy:e1"}
        with pytest.raises(CaseError, match="no such event"):
            set_mark(c, "toy:nope", True)
        with pytest.raises(CaseError, match="no such event"):
            set_mark(c, "toy:e1", True, rowid=999)
        head, _, problems = verify(c.conn)
        assert problems == []
        # Each mark row carries the hash of its columns; the marks table is registered for row checks, so
        # an edited mark is named by verify.
        for *values, stored in c.conn.execute(f"SELECT {', '.join(MARK_COLUMNS)}, row_hash FROM marks"):
            assert audit.row_hash(values) == stored
    conn = sqlite3.connect(tmp_path / "m.stanch")
    conn.execute("UPDATE marks SET marked = 1 WHERE rowid = 3")
    conn.commit()
    conn.close()
    assert "marks" in audit.AUDITED
    with create_case_open(tmp_path / "m.stanch") as c:
        _, _, problems = verify(c.conn)
    assert any(p.table == "marks" and p.row == 3 and "edited" in p.what for p in problems), problems


def test_marks_of_a_case_without_the_table_are_none(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    assert marked_among(conn, ["a"]) == set() and marked_events(conn) == []
