"""Case bundles: a zip of the case copy, the exports and a manifest; `verify_bundle` catches any tampering.

The bundle is built once from the demo case with the real exports (timeline JSONL and the Markdown report); each
tampering test rewrites a copy of that zip the way a careless or hostile hand would, and the check must fail with
a one-line reason naming what changed. Hostile zips (`../`, absolute or backslash names, links, duplicates) are
refused before any content is read.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from casefile.audit import verify
from casefile.bundle import (
    BUNDLE_EXPORTS,
    CASE_FILE,
    MANIFEST,
    SEAL,
    check_bundle,
    export_bundle,
    is_bundle,
    make_bundle,
    verify_bundle,
)
from casefile.case import CaseError, open_case
from casefile.export import export
from tui.demo import build_demo


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    path = build_demo(d / "demo.stanch", events=3000, quiet=True)
    with open_case(path) as case:
        case.add_note("handed to the IR lead")
        export(case, "timesketch-jsonl", d / "timeline.jsonl")
        export(case, "markdown", d / "report.md")
        head, entries, _ = verify(case.conn)
        out = d / "out" / "case.zip"
        out.parent.mkdir()
        manifest = make_bundle(case, out, {"timeline.jsonl": d / "timeline.jsonl",
                                           "report.md": (d / "report.md").read_bytes()})
        after = verify(case.conn)
    return SimpleNamespace(d=d, case=path, zip=out, manifest=manifest, head=head, entries=entries, after=after)


def _members(zip_path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(zip_path) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _rewrite(src: Path, dst: Path, change: Callable[[list[tuple[zipfile.ZipInfo, bytes]]],
                                                    list[tuple[zipfile.ZipInfo, bytes]]]) -> Path:
    members = change(_members(src))
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return dst


def _replace(name: str, fn: Callable[[bytes], bytes]):
    def change(members):
        return [(i, fn(data) if i.filename == name else data) for i, data in members]
    return change


def _manifest_edit(fn: Callable[[dict], None], canonical: bool = True):
    def edit(data: bytes) -> bytes:
        m = orjson.loads(data)
        fn(m)
        if canonical:
            return orjson.dumps(m, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        return orjson.dumps(m)
    return _replace(MANIFEST, edit)


def _edit_case(sql: str, fix_manifest: bool):
    """Change the case copy with SQLite (as an editor would), optionally updating its hash in the manifest."""
    def change(members):
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "c.stanch"
            db.write_bytes(dict((i.filename, d) for i, d in members)[CASE_FILE])
            conn = sqlite3.connect(db)
            conn.execute(sql)
            conn.commit()
            conn.close()
            new = db.read_bytes()
        for info, data in members:
            if info.filename == CASE_FILE:
                data = new
            elif info.filename == MANIFEST and fix_manifest:
                m = orjson.loads(data)
                m["files"][0].update(sha256=hashlib.sha256(new).hexdigest(), size=len(new))
                data = orjson.dumps(m, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
            out.append((info, data))
        return out
    return change


def _flip_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1:]


def _add(name: str, data: bytes = b"surprise\n", mode: int | None = None):
    def change(members):
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        return [*members, (info, data)]
    return change


def _drop(name: str):
    def change(members):
        return [(i, d) for i, d in members if i.filename != name]
    return change


def test_a_fresh_bundle_verifies_and_leaves_the_case_untouched(bundle):
    check = check_bundle(bundle.zip)
    assert check.problems == [] and check.ok and verify_bundle(bundle.zip) == []
    m = bundle.manifest
    assert check.manifest == m
    assert [f["path"] for f in m["files"]] == [CASE_FILE, "exports/report.md", "exports/timeline.jsonl"]
    assert m["case"]["source_head"] == bundle.head and m["case"]["source_entries"] == bundle.entries
    assert m["case"]["audit_entries"] == bundle.entries + 1 and check.head == m["case"]["audit_head"]
    assert m["case"]["schema_version"] >= 11 and m["stanch_version"] and m["created_at"].endswith("Z")
    # Bundling reads the case; it does not write to it.
    assert bundle.after[:2] == (bundle.head, bundle.entries)
    # The zip is private and nothing is left behind.
    assert stat.S_IMODE(os.stat(bundle.zip).st_mode) == 0o600
    assert sorted(os.listdir(bundle.zip.parent)) == ["case.zip"]
    assert is_bundle(bundle.zip) and not is_bundle(bundle.case)
    # The exports are the files passed in, byte for byte.
    with zipfile.ZipFile(bundle.zip) as zf:
        assert zf.read("exports/timeline.jsonl") == (bundle.d / "timeline.jsonl").read_bytes()
        assert zf.read("exports/report.md") == (bundle.d / "report.md").read_bytes()


def test_the_bundled_case_is_a_sealed_working_copy(bundle, tmp_path):
    with zipfile.ZipFile(bundle.zip) as zf:
        (tmp_path / "c.stanch").write_bytes(zf.read(CASE_FILE))
    assert not (tmp_path / "c.stanch-wal").exists()
    with open_case(tmp_path / "c.stanch", upgrade=False) as case:
        head, entries, problems = verify(case.conn)
        assert problems == [] and head == bundle.manifest["case"]["audit_head"]
        op, details, prev = case.conn.execute(
            "SELECT operation, details, prev_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        assert op == SEAL and prev == bundle.head
        assert orjson.loads(details)["files"] == bundle.manifest["files"][1:]
        assert case.conn.execute("SELECT count(*) FROM notes WHERE text = 'handed to the IR lead'").fetchone()[0] == 1


def test_a_recorded_head_is_checked(bundle):
    assert verify_bundle(bundle.zip, expected_head=bundle.head) == []
    assert verify_bundle(bundle.zip, expected_head=bundle.manifest["case"]["audit_head"]) == []
    problems = verify_bundle(bundle.zip, expected_head="ab" * 32)
    assert len(problems) == 1 and "is not the head you recorded" in problems[0]


TAMPERING = {
    "a byte changed in the case copy": (_replace(CASE_FILE, _flip_middle), "case.stanch: SHA-256 does not match"),
    "a row edited in the case copy": (_edit_case("UPDATE notes SET text = 'nothing here'", fix_manifest=False),
                                      "case.stanch: SHA-256 does not match"),
    "a row edited, the manifest hash updated to match": (
        _edit_case("UPDATE notes SET text = 'nothing here'", fix_manifest=True),
        "case.stanch: audit: notes row 1: was edited"),
    "a row deleted, the manifest hash updated to match": (
        _edit_case("DELETE FROM events WHERE rowid = 7", fix_manifest=True), "audit: events row 7: was deleted"),
    "a byte changed in an export": (_replace("exports/report.md", _flip_middle),
                                    "exports/report.md: SHA-256 does not match"),
    "an export truncated": (_replace("exports/timeline.jsonl", lambda d: d[:100]),
                            "exports/timeline.jsonl: 100 bytes, the manifest says"),
    "the manifest's time edited": (_manifest_edit(lambda m: m.update(created_at="2025-08-20T00:00:00.000000Z")),
                                   "does not match the manifest (manifest edited after bundling)"),
    "the manifest's chain head edited": (_manifest_edit(lambda m: m["case"].update(audit_head="0" * 64)),
                                         "its audit chain ends at"),
    "the manifest's title edited": (_manifest_edit(lambda m: m["case"].update(title="another incident")),
                                    "the manifest says 'another incident'"),
    "an export's hash edited in the manifest": (
        _manifest_edit(lambda m: m["files"][1].update(sha256="f" * 64)), "exports/report.md: SHA-256 does not match"),
    "the manifest reformatted": (_manifest_edit(lambda m: None, canonical=False), "not as stanch wrote it"),
    "a field added to the manifest": (_manifest_edit(lambda m: m.update(signed_by="mallory")), "unexpected fields"),
    "the manifest removed": (_drop(MANIFEST), "no manifest.json"),
    "an extra file": (_add("exports/extra.txt"), "exports/extra.txt: in the zip but not in the manifest"),
    "a file missing": (_drop("exports/timeline.jsonl"),
                       "exports/timeline.jsonl: listed in the manifest but missing from the zip"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_a_tampered_bundle_fails_with_a_one_line_reason(bundle, tmp_path, how):
    change, expected = TAMPERING[how]
    bad = _rewrite(bundle.zip, tmp_path / "bad.zip", change)
    problems = verify_bundle(bad)
    assert problems, f"{how}: went unnoticed"
    assert all("\n" not in p and p.startswith(str(bad)) for p in problems), problems
    assert any(expected in p for p in problems), problems


HOSTILE = {
    "a ../ entry": (_add("../evil"), "climbs out of the bundle"),
    "a ../ entry inside a folder": (_add("exports/../../evil"), "climbs out of the bundle"),
    "an absolute name": (_add("/etc/cron.d/evil"), "absolute or unsafe name"),
    "a Windows drive name": (_add("C:/evil"), "absolute or unsafe name"),
    "a backslash name": (_add("..\\evil"), "absolute or unsafe name"),
    "a symbolic link": (_add("exports/link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777), "link or special file"),
    "a directory entry": (_add("exports/sub/"), "directory entry"),
    "a duplicate entry": (_add(CASE_FILE, b"not the case"), "appears twice"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("how", list(HOSTILE))
def test_a_hostile_zip_is_refused_before_reading(bundle, tmp_path, how, monkeypatch):
    change, expected = HOSTILE[how]
    bad = _rewrite(bundle.zip, tmp_path / "bad.zip", change)
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or pytest.fail("read"))
    problems = verify_bundle(bad)
    assert len(problems) == 1 and expected in problems[0] and "refusing to read" in problems[0], problems
    assert opened == []


def test_bytes_changed_inside_the_zip_itself_are_caught(bundle, tmp_path):
    raw = bytearray(bundle.zip.read_bytes())
    with zipfile.ZipFile(bundle.zip) as zf:
        info = zf.getinfo(CASE_FILE)
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    raw[at] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    problems = verify_bundle(bad)
    assert problems and all("\n" not in p for p in problems)
    assert any("case.stanch" in p and ("corrupt in the zip" in p or "SHA-256" in p) for p in problems), problems


def test_not_a_bundle(tmp_path, bundle):
    (tmp_path / "x.zip").write_bytes(b"hello")
    assert "not a readable zip" in verify_bundle(tmp_path / "x.zip")[0]
    assert "no such bundle file" in verify_bundle(tmp_path / "missing.zip")[0]
    assert "not a readable zip" in verify_bundle(bundle.case)[0]


def test_bad_exports_are_refused_and_leave_nothing(bundle, tmp_path):
    with pytest.raises(CaseError, match="not a plain file name"):
        make_bundle(bundle.case, tmp_path / "b.zip", {"../report.md": b"x"})
    with pytest.raises(CaseError, match="no such file"):
        make_bundle(bundle.case, tmp_path / "b.zip", {"report.md": tmp_path / "missing.md"})
    with pytest.raises(CaseError, match="does not exist"):
        make_bundle(bundle.case, tmp_path / "nowhere" / "b.zip")
    assert os.listdir(tmp_path) == []


def test_a_bundle_from_a_case_path_without_exports(bundle, tmp_path):
    manifest = make_bundle(bundle.case, tmp_path / "plain.zip")
    assert [f["path"] for f in manifest["files"]] == [CASE_FILE]
    assert verify_bundle(tmp_path / "plain.zip") == []


def test_export_bundle_writes_the_case_with_the_timeline_and_the_report(bundle, tmp_path):
    with open_case(bundle.case) as case:
        n = export_bundle(case, tmp_path / "handoff.zip")
    assert n == 1 + len(BUNDLE_EXPORTS) and os.listdir(tmp_path) == ["handoff.zip"]
    check = check_bundle(tmp_path / "handoff.zip")
    assert check.ok, check.problems
    assert [f["path"] for f in check.manifest["files"]] == [
        CASE_FILE, *sorted(f"exports/{name}" for name in BUNDLE_EXPORTS.values())]
    with zipfile.ZipFile(tmp_path / "handoff.zip") as zf:
        first = orjson.loads(zf.read("exports/timeline.jsonl").splitlines()[0])
    assert {"message", "datetime", "timestamp_desc"} <= set(first)
