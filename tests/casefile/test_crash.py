"""A kill -9 or Ctrl-C in the middle of a large ingest leaves a consistent case, and the same ingest run
again completes it without duplicates (issue: ingest at incident scale)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hardening.crash import _batches

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gateway_file(tmp_path_factory):
    from connectors.demo import generate

    d = tmp_path_factory.mktemp("demo")
    files = generate(d, events=60_000, seed=5)
    with open(files.gateway, "rb") as fh:
        n = sum(1 for _ in fh)
    return files.gateway, n


def _stanch(*args, **kw):
    env = {**os.environ, "STANCH_INGEST_BATCH": "2000"}
    return subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_ingest_is_consistent_and_a_rerun_completes_it(tmp_path, gateway_file, how):
    path, n = gateway_file
    case = tmp_path / "c.stanch"
    subprocess.run([sys.executable, "-m", "tui.cli", "new", str(case)], cwd=ROOT, check=True, capture_output=True)
    stop_after = random.Random(how).randint(2, 8)  # a random batch, reproducible per signal
    p = _stanch("ingest", str(case), str(path))
    deadline = time.monotonic() + 120
    while _batches(case) < stop_after and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "the ingest finished before it could be interrupted; make the input larger"
    p.send_signal(how)
    p.wait(timeout=60)
    if how == signal.SIGINT:
        err = p.stderr.read().decode()
        assert p.returncode == 130 and "interrupted" in err, err

    # Consistent: the case opens, verifies, and holds whole batches only.
    v = subprocess.run([sys.executable, "-m", "tui.cli", "verify", str(case)], cwd=ROOT, capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    conn = sqlite3.connect(case)
    partial = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    assert 0 < partial < n

    # The same ingest again completes it: every line once, no duplicates.
    r = _stanch("ingest", str(case), str(path), "--json")
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    doc = json.loads(out)
    assert doc["totals"]["events_added"] == n - partial
    conn = sqlite3.connect(case)
    total, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
    statuses = [s for (s,) in conn.execute("SELECT status FROM sources ORDER BY id")]
    fts = conn.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'nginx'").fetchone()[0]
    conn.close()
    assert total == distinct == n
    assert statuses == ["interrupted", "done"]
    assert fts == n  # the full-text index caught up with every event
    v = subprocess.run([sys.executable, "-m", "tui.cli", "verify", str(case)], cwd=ROOT, capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
