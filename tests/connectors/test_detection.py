"""Every committed log fixture, across vendors: detected as its own format and claimed by no other, parsed
into exactly the expected number of events, with every bad or non-event line expected (line, kind, reason).

Each vendor folder under tests/fixtures/ lists its files in `expected.json`:
`{"<file>": {"format": "<name>", "events": N, "problems": [{"line": n, "kind": "malformed|skipped",
"reason": "<text the reason starts with>"}]}}`. The counts were checked by hand against the raw files
(see each folder's SOURCES.md for what the odd lines are).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import connectors  # noqa: F401  (registers every format)
from casefile import formats
from casefile.records import Problem
from casefile.sources import FileSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOG_SUFFIXES = (".log", ".jsonl", ".json", ".csv", ".txt")


def _expected() -> dict[str, dict]:
    out = {}
    for spec in sorted(FIXTURES.glob("*/expected.json")):
        for name, exp in json.loads(spec.read_text()).items():
            out[f"{spec.parent.name}/{name}"] = exp
    return out


EXPECTED = _expected()


NOT_LOGS = {"bloodhound"}  # JSON Schemas the export tests validate against, not log samples


def test_every_log_fixture_is_listed():
    logs = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
            if p.suffix in LOG_SUFFIXES and p.name != "expected.json" and p.parent.parent == FIXTURES
            and p.parent.name not in NOT_LOGS}
    assert logs == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detection_and_parse_counts(name):
    exp = EXPECTED[name]
    src = FileSource(str(FIXTURES / name))
    head = src.head()
    assert formats.detect(head, name).name == exp["format"]
    others = [f.name for f in formats.all_formats() if f.name != exp["format"] and f.sniff(head) >= 0.5]
    assert others == [], f"{name} is also claimed by {others}"
    fmt = formats.get(exp["format"])
    events, problems = 0, []
    for item in fmt.parse(src):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            events += 1
    assert events == exp["events"]
    assert [(p.line, p.kind) for p in problems] == [(p["line"], p["kind"]) for p in exp["problems"]]
    for got, want in zip(problems, exp["problems"], strict=True):
        assert got.reason.startswith(want["reason"]), (got, want)


def test_one_ingest_of_every_fixture_detects_each_file_and_stores_every_event(tmp_path):
    # Mixed formats in one call: each file is detected on its own, and each file's events reach the case
    # (fewer only where the same vendor id appears twice, across files or within one).
    from casefile.audit import verify
    from casefile.case import create_case
    from casefile.ingest import ingest

    paths = [str(FIXTURES / name) for name in sorted(EXPECTED)]
    with create_case(tmp_path / "all.stanch") as case:
        summaries = ingest(case, paths)
        by_path = {s.path: s for s in summaries}
        for name, exp in EXPECTED.items():
            s = by_path[str(FIXTURES / name)]
            assert s.error is None and s.format == exp["format"], (name, s.error, s.format)
            assert s.events_seen == exp["events"], name
            assert s.events_added + s.duplicates == exp["events"], name
        assert verify(case.conn)[2] == []
