"""kill -9 at random points, many times over (issue 12, "Crashes"): what `tests/hardening/test_crash_scale.py` runs
small in CI and `python -m tests.hardening --full` runs at full size (a 1,000,000-event ingest killed 20 times;
an apply of 1,000 revocations against a real OpenBao killed 20 times).

**Ingest.** One file, one case. Each round starts `stanch ingest CASE FILE` in its own process group and sends
SIGKILL to the group at a random point: mostly once the stored events pass a random count between what earlier
runs stored and the end of the file, sometimes at a random time early in the run (while it re-reads what is
stored), plus a random part of a chunk's time, so the kill lands anywhere: while workers parse, inside a
transaction, between commits, while deferred indexes are rebuilt. After every kill: the case opens, `stanch verify` passes, it holds no
duplicate event, and it never holds fewer events than before the round (a commit is durable). The last run is
left to finish: it must add exactly the events still missing, and the case then holds each line's event once.

**Apply.** One approved plan revoking `items` Vault tokens by accessor. Each round runs the apply in a child
process (`tests.playbooks.crash_child`) and SIGKILLs it after a random number of items are done (resumes included:
a round may be killed while it is still probing what the last kill left in flight). A last apply in this process
resumes and verifies. Then, from the plan's journal and the peer's own audit device: every item is verified;
every accessor was revoked at the peer; an accessor was revoked more than once only if its item was in flight at
a kill; an item done at a kill was never sent again; every item in flight at a kill was probed on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", *args]


def _ro(case: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{case}?mode=ro", uri=True, timeout=30)


def _batches(case: Path) -> int:
    """`ingest.batch` audit entries so far: one per committed chunk (0 while the case cannot be read)."""
    try:
        conn = _ro(case)
        try:
            return int(conn.execute("SELECT count(*) FROM audit WHERE operation = 'ingest.batch'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _top_rowid(case: Path) -> int:
    """The last event's rowid: events only grow, so this is how far the stored events reach (and costs nothing)."""
    try:
        conn = _ro(case)
        try:
            return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _events(case: Path) -> tuple[int, int]:
    conn = _ro(case)
    try:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        return int(total), int(distinct)
    finally:
        conn.close()


def _kill_group(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)  # stanch and its parser workers: the whole program dies at once
    p.wait(timeout=60)


def ingest_kills(path: Path, n: int, workdir: Path, kills: int, seed: int, *, chunk_lines: int = 8000,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Kill `stanch ingest` of `path` (`n` events, one per line) `kills` times, then let it finish. Raises
    AssertionError when a guarantee breaks; returns the figures."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    case = workdir / "ingest.stanch"
    subprocess.run(_cli("new", str(case)), cwd=ROOT, check=True, capture_output=True)
    env = {**os.environ, "STANCH_INGEST_BATCH": str(chunk_lines)}
    before = 0
    rounds: list[dict[str, Any]] = []
    started = time.monotonic()
    verify_s = 0.0
    while len(rounds) < kills:
        at_start = _batches(case)
        # Where to kill: mostly once the stored events pass a random count between what is stored and the end;
        # sometimes at a random time early on, while the run re-reads what an earlier run stored.
        early = before >= n - 1 or rng.random() < 0.2
        span = max(1, 2 * (n - before) // (kills - len(rounds) + 1))  # spread the kills over what is left
        target = rng.uniform(0.0, 3.0) if early else rng.randint(before + 1, min(n - 1, before + span))
        extra = rng.uniform(0.0, 0.05)  # and part of a chunk's time more
        p = subprocess.Popen(_cli("ingest", str(case), str(path)), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < 600:
            if (time.monotonic() - t0 >= target) if early else (_top_rowid(case) >= target):
                break
            time.sleep(0.005)
        time.sleep(extra)
        if p.poll() is not None:  # finished (or failed) before its kill: start again with a new point
            err = p.stderr.read().decode() if p.stderr else ""
            assert p.returncode == 0, f"ingest failed before its kill: {err[-2000:]}"
            log(f"ingest round {len(rounds) + 1}: finished before the kill point; the case is reset")
            for side in ("", "-wal", "-shm"):
                Path(f"{case}{side}").unlink(missing_ok=True)
            subprocess.run(_cli("new", str(case)), cwd=ROOT, check=True, capture_output=True)
            before = 0
            continue
        _kill_group(p)
        if p.stderr:
            p.stderr.close()
        t = time.monotonic()
        v = subprocess.run(_cli("verify", str(case)), cwd=ROOT, capture_output=True, text=True)
        verify_s += time.monotonic() - t
        assert v.returncode == 0, f"round {len(rounds) + 1}: verify failed after the kill: {v.stdout}{v.stderr}"
        total, distinct = _events(case)
        assert total == distinct, f"round {len(rounds) + 1}: {total - distinct} duplicate events"
        assert total >= before, f"round {len(rounds) + 1}: {before - total} committed events lost"
        rounds.append({"committed_chunks": _batches(case) - at_start, "events": total})
        point = f"{target:.2f} s in" if early else f"past {target:,} events"
        log(f"ingest round {len(rounds)}: killed {point} (+{extra:.2f} s), after {_batches(case) - at_start} chunks "
            f"of new events; {total:,} of {n:,} events stored; verify ok")
        before = total
    r = subprocess.run(_cli("ingest", str(case), str(path), "--json"), cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    added = json.loads(r.stdout)["totals"]["events_added"]
    total, distinct = _events(case)
    v = subprocess.run(_cli("verify", str(case)), cwd=ROOT, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert added == n - before, f"the last run added {added:,} events; {n - before:,} were missing"
    assert total == distinct == n, (total, distinct, n)
    conn = _ro(case)
    try:
        statuses = Counter(s for (s,) in conn.execute("SELECT status FROM sources"))
    finally:
        conn.close()
    assert statuses["done"] == 1
    log(f"ingest: {kills} kills; the last run added {added:,} missing events; {total:,} events, each once; "
        f"verify ok")
    return {"events": n, "kills": kills, "stored_at_kills": [x["events"] for x in rounds],
            "last_run_added": added, "sources": dict(statuses), "verify_s_total": round(verify_s, 1),
            "seconds": round(time.monotonic() - started, 1)}


def _plan_states(case: Path, pid: int) -> dict[int, str]:
    try:
        conn = _ro(case)
        try:
            return dict(conn.execute("SELECT seq, state FROM plan_items WHERE plan_id = ? AND kind = 'act'",
                                     (pid,)).fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def _journal_top(case: Path) -> int:
    conn = _ro(case)
    try:
        return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM journal").fetchone()[0])
    finally:
        conn.close()


def apply_kills(base: str, audit: Path, items: int, workdir: Path, kills: int, seed: int, *,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Kill an apply of `items` revocations against the OpenBao at `base` `kills` times, then resume it. Raises
    AssertionError when a guarantee breaks; returns the figures."""
    from benchmarks.playbooks import create_tokens, vault_plan
    from casefile import plans
    from casefile.case import open_case
    from connectors.config import ConnectorSettings
    from playbooks import engine
    from tests.connectors.test_vault import ROOT_TOKEN
    from tests.playbooks.test_peers import _revokes_at_the_peer, lookup_accessor

    rng = random.Random(seed)
    started = time.monotonic()
    tokens = asyncio.run(create_tokens(base, items, name="kill"))
    accessors = [t["accessor"] for t in tokens]
    s = ConnectorSettings(name="bao", kind="vault", url=base, concurrency=16)
    path, pid = vault_plan(workdir, tokens, s)
    with open_case(path, analyst="responder") as case:
        target_of = {i.seq: i.target or "" for i in plans.load(case, pid).items if i.kind == "act"}
    in_flight_at: list[set[str]] = []
    done_at: list[tuple[set[str], int]] = []  # (targets done at a kill, journal rowid at that kill)
    killed = 0
    while killed < kills:
        states = _plan_states(path, pid)
        done_now = sum(1 for st in states.values() if st == "done")
        if done_now >= items:
            break
        kill_after = rng.randint(done_now, done_now + max(1, (items - done_now) // max(1, kills - killed)))
        child = subprocess.Popen([sys.executable, "-m", "tests.playbooks.crash_child", str(path), str(pid), base],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while (sum(1 for st in _plan_states(path, pid).values() if st == "done") < kill_after
               and child.poll() is None and time.monotonic() < deadline):
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.05))
        if child.poll() is not None:
            err = child.stderr.read().decode() if child.stderr else ""
            assert child.returncode == 0, f"apply failed before its kill: {err[-2000:]}"
            log(f"apply round {killed + 1}: the apply finished before its kill point")
            break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        if child.stderr:
            child.stderr.close()
        killed += 1
        states = _plan_states(path, pid)
        flying = {target_of[q] for q, st in states.items() if st == "in-flight"}
        done = {target_of[q] for q, st in states.items() if st in ("done", "verified")}
        in_flight_at.append(flying)
        done_at.append((done, _journal_top(path)))
        log(f"apply kill {killed}: {len(done)} of {items} done, {len(flying)} in flight")
    with open_case(path, analyst="responder") as case:
        out = engine.apply(case, pid, {}, engine.RunOptions(settings={"bao": s}, connector_secrets={"bao": ROOT_TOKEN}))
        states_end = Counter(i["state"] for i in out["items"] if i["kind"] == "act")
        journal = plans.journal(case, pid)
        rows = case.conn.execute("SELECT rowid, seq, phase, detail FROM journal WHERE plan_id = ? ORDER BY rowid",
                                 (pid,)).fetchall()
    assert states_end == {"verified": items}, states_end
    seen = _revokes_at_the_peer(base, audit, accessors)
    missing = [a for a in accessors if seen[a] == 0]
    ever_in_flight = set().union(*in_flight_at) if in_flight_at else set()
    twice = {a for a in accessors if seen[a] > 1}
    assert not missing, f"{len(missing)} accessors never revoked"
    assert twice <= ever_in_flight, f"{len(twice - ever_in_flight)} revoked twice without being in flight at a kill"
    for a, count in seen.items():
        assert count <= 1 + sum(1 for f in in_flight_at if a in f), (a, count)
    # An item done at a kill is never sent again: no `intent` for it after that kill's journal position.
    seq_of = {t: q for q, t in target_of.items()}
    for done, top in done_at:
        done_seqs = {seq_of[t] for t in done}
        resent = {q for rowid, q, phase, _ in rows if rowid > top and phase == "intent" and q in done_seqs}
        assert not resent, f"{len(resent)} items done at a kill were sent again"
    # Every item in flight at a kill was probed by a later resume before anything else was sent for it.
    for flying, (_, top) in zip(in_flight_at, done_at, strict=True):
        for t in flying:
            q = seq_of[t]
            later = [phase for rowid, seq, phase, _ in rows if rowid > top and seq == q]
            assert later and later[0] == "resume", (t, later[:3])
    assert all(lookup_accessor(base, a) == 400 for a in rng.sample(accessors, min(20, items)))
    figures = {"items": items, "kills": killed, "in_flight_at_kills": [len(f) for f in in_flight_at],
               "revoked_twice": len(twice), "resume_probes": sum(1 for e in journal if e["phase"] == "resume"),
               "seconds": round(time.monotonic() - started, 1)}
    log(f"apply: {killed} kills; {items} items verified; {len(twice)} accessors revoked twice (each in flight at a "
        f"kill); {figures['resume_probes']} resume probes")
    return figures
