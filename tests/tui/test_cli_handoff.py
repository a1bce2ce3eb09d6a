"""The hand-off commands end to end: `stanch export --format bundle`, `stanch verify BUNDLE` (a tampered bundle
fails with a one-line reason), `stanch merge` twice (the second changes nothing)."""

from __future__ import annotations

import json
import zipfile

import pytest

from tui.cli import main
from tui.demo import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo") / "demo.stanch", events=3000, quiet=True)


def test_bundle_export_verify_and_tamper(demo, tmp_path, capsys):
    out = tmp_path / "case.zip"
    assert main(["export", str(demo), "--format", "bundle", "-o", str(out)]) == 0
    assert "a bundle of the case and 5 exports" in capsys.readouterr().out
    names = set(zipfile.ZipFile(out).namelist())
    assert {"manifest.json", "case.stanch", "exports/timeline.jsonl", "exports/report.html",
            "exports/graph.opengraph.json"} <= names
    assert main(["verify", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["chain_head"]
    assert main(["verify", str(out), "--head", doc["chain_head"]]) == 0
    assert "ok: bundle intact" in capsys.readouterr().out
    # one byte of one export changed: the bundle no longer verifies, and says which file
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "exports/report.md":
                data = data.replace(b"Summary", b"Summery", 1)
            dst.writestr(info, data)
    assert main(["verify", str(bad)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("stanch: ") for line in err) and "report.md" in err[0]


def test_merge_twice_changes_nothing_the_second_time(demo, tmp_path, capsys):
    import shutil

    mine, theirs = tmp_path / "mine.stanch", tmp_path / "theirs.stanch"
    assert main(["new", str(mine)]) == 0
    shutil.copyfile(demo, theirs)
    assert main(["note", str(theirs), "the second responder's note"]) == 0
    capsys.readouterr()
    assert main(["merge", str(mine), str(theirs)]) == 0
    assert capsys.readouterr().out.startswith(f"merged {theirs} into {mine}: ")
    assert main(["merge", str(mine), str(theirs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False
    assert main(["verify", str(mine)]) == 0
    info = json.loads((capsys.readouterr(), main(["info", str(mine), "--json"]), capsys.readouterr().out)[2])
    assert info["counts"]["events"] > 2000 and info["counts"]["notes"] == 1
