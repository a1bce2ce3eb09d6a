"""`stanch export`: Timesketch JSONL and CSV, the Markdown and HTML report. Every format succeeds on an empty case;
Timesketch records carry the required columns with an explicit offset; CSV cells cannot run as formulas; the HTML
references nothing outside itself; a canary token fed through ingest and a note is in no export, raw, URL-encoded
or base64-encoded."""

from __future__ import annotations

import base64
import csv
import json
import re
import urllib.parse
import zipfile
from pathlib import Path

import pytest

import connectors  # noqa: F401  (registers the parsers)
from casefile.case import create_case, open_case
from casefile.export import FORMATS, csv_cell, export
from casefile.ingest import ingest
from casefile.marks import set_mark
from tests.conftest import fake_token

OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def test_every_format_succeeds_on_an_empty_case(tmp_path: Path) -> None:
    with create_case(tmp_path / "empty.stanch") as case:
        for fmt in FORMATS:
            out = tmp_path / f"out.{fmt}"
            export(case, fmt, out)
            assert out.exists() and out.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out.timesketch-jsonl").read_text() == ""
    assert next(csv.reader((tmp_path / "out.timesketch-csv").open()))[:3] == ["message", "datetime", "timestamp_desc"]
    assert "Detection rules have not been run" in (tmp_path / "out.markdown").read_text()
    assert "<h2>Findings</h2>" in (tmp_path / "out.html").read_text()


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, str]:
    """A case whose log holds a canary token in a query string, a formula-looking user agent and markup."""
    canary = "ghp_" + fake_token("", 36, salt="canary")
    log = tmp_path / "access.log"
    log.write_text(
        f'203.0.113.9 - - [12/Aug/2025:14:05:03 +0000] "GET /api/cases?access_token={canary} HTTP/1.1" 200 512 "-" '
        '"=HYPERLINK(\\"http://evil.example\\",\\"x\\")"\n'
        '203.0.113.9 - - [12/Aug/2025:14:06:03 +0000] "GET /<script>alert(1)</script> HTTP/1.1" 404 0 "-" '
        '"+cmd|calc"\n')
    path = tmp_path / "h.stanch"
    with create_case(path, title="INC <b>9</b>") as case:
        ingest(case, [str(log)], "nginx-combined")
        case.add_note(f"found {canary} in a ticket")
        first = case.conn.execute("SELECT id FROM events ORDER BY ts LIMIT 1").fetchone()[0]
        set_mark(case, first, True)
    return path, canary


def test_timesketch_records_and_formula_injection(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = hostile
    with open_case(path) as case:
        n_events = case.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert export(case, "timesketch-jsonl", tmp_path / "t.jsonl") == n_events == 2
        assert export(case, "timesketch-csv", tmp_path / "t.csv") == 2
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        doc = json.loads(line)
        assert doc["message"] and doc["timestamp_desc"] and OFFSET.match(doc["datetime"]), doc["datetime"]
    rows = list(csv.DictReader((tmp_path / "t.csv").open(newline="")))
    assert len(rows) == 2 and all(OFFSET.match(r["datetime"]) for r in rows)
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert rows[0]["user_agent"].startswith("'=HYPERLINK")
    assert [csv_cell(v) for v in ("=1+1", "-2", "@SUM(A1)", "ok", None)] == ["'=1+1", "'-2", "'@SUM(A1)", "ok", ""]


def test_report_has_the_key_timeline_and_no_external_reference(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = hostile
    with open_case(path) as case:
        export(case, "markdown", tmp_path / "r.md")
        export(case, "html", tmp_path / "r.html")
    report = (tmp_path / "r.md").read_text()
    assert "## Key timeline" in report and "2025-08-12T14:05:03Z" in report
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<b>9</b>" not in page and "INC &lt;b&gt;9&lt;/b&gt;" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href|action|srcset)\s*=|url\(|@import|<link|<iframe|<img""", page, re.I)
    assert "default-src 'none'" in page


def test_no_export_holds_the_canary(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, canary = hostile
    outs = []
    with open_case(path) as case:
        for fmt in FORMATS:
            out = tmp_path / f"x.{fmt}"
            export(case, fmt, out)
            outs.append(out)
    forms = {canary, urllib.parse.quote(canary, safe=""), base64.b64encode(canary.encode()).decode(),
             base64.urlsafe_b64encode(canary.encode()).decode().rstrip("=")}
    for out in outs:
        if zipfile.is_zipfile(out):  # the bundle: every file in it, the case copy included
            with zipfile.ZipFile(out) as z:
                blobs = {f"{out.name}/{n}": z.read(n).decode("utf-8", "replace") for n in z.namelist()}
        else:
            blobs = {out.name: out.read_text()}
        for name, blob in blobs.items():
            assert not [f for f in forms if f in blob], name
