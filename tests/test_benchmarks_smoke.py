"""The benchmark harness runs end to end at a smoke size, so it cannot rot. It asserts no speed: speed
targets are read from the figures it prints (benchmarks/RESULTS.md), never checked by a timed test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_writes_every_figure_with_its_baselines(tmp_path):
    out = tmp_path / "RESULTS.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out), "--workdir",
                        str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert "Machine: cpu" in text and "sqlite 3." in text
    assert "| gateway (nginx JSON) | 20,000 |" in text
    assert "| okta (System Log JSON) | 5,000 |" in text
    assert "× sqlite-utils" in text and "× floor" in text
    assert "Append: 5,000 events into a case holding 20,000" in text
    assert "(NOT skipped)" not in text  # re-ingest of the same file was skipped
    assert "| text | nginx-combined | 5,000 |" in text and "| csv | salesforce-eventlogfile | 5,000 |" in text
    assert "| cloudtrail | aws-cloudtrail | 5,000 |" in text
    assert "Revocations: 200 Vault tokens revoked by accessor" in text and "Engine / sequential:" in text
    console = (tmp_path / "RESULTS-console.md").read_text()
    assert "## Open to first paint" in console and "## Filter keystroke to updated rows" in console
