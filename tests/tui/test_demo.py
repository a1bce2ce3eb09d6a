"""`stanch demo`: the demo incident becomes a verified case holding no raw secret."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from connectors.demo import _scenario


def test_demo_builds_a_verified_secret_free_case(tmp_path):
    case = tmp_path / "demo.stanch"
    r = subprocess.run([sys.executable, "-m", "tui.cli", "demo", "--no-tui", "--case", str(case),
                        "--events", "4000", "--seed", "11"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "demo case ready" in r.stdout
    info = json.loads(subprocess.run([sys.executable, "-m", "tui.cli", "info", str(case), "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    assert [s["format"] for s in info["sources"]] == ["nginx-json", "okta-system-log", "vault-audit", "vault-token",
                                                     "data-csv"]
    assert all(s["malformed"] == 0 and s["status"] == "done" for s in info["sources"])
    assert info["counts"]["events"] > 3000 and info["counts"]["credentials"] > 10
    assert info["window"] == {"start": "2025-08-08T00:00:00Z", "end": "2025-08-18T23:59:59Z"}
    v = subprocess.run([sys.executable, "-m", "tui.cli", "verify", str(case)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr

    # No raw credential the scenario generated is anywhere in the case file (or its WAL).
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("demo.stanch"))
    # An AWS access key *id* is an identifier, not a secret (its secret key is): the case keys CloudTrail's
    # credentials by it (`aws-key:AKIA…`, ARCHITECTURE §3), so it is not looked for.
    secrets = [s for s in _scenario(11, 4000).secrets if not (s.startswith("AKIA") and len(s) == 20)]
    assert secrets
    leaked = [s for s in secrets if s.encode() in blob]
    assert leaked == []

    # A second run replaces the demo case; it never replaces a file that is not a demo case.
    other = tmp_path / "mine.stanch"
    subprocess.run([sys.executable, "-m", "tui.cli", "new", str(other)], check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "tui.cli", "demo", "--no-tui", "--case", str(other),
                        "--events", "2000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "not a stanch demo case" in r.stderr


def test_overview_console_shows_the_case(tmp_path):
    from casefile.case import create_case
    from tui.app import OverviewApp

    path = tmp_path / "c.stanch"
    with create_case(path, title="INC-42 [bold]not markup[/bold]") as case:
        case.set_meta({"window_start": "2025-08-08T00:00:00Z"})

    async def drive():
        app = OverviewApp(str(path))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.sub_title.startswith("INC-42 [bold]not markup[/bold]")  # untrusted text stays literal
            summary = str(app.screen.query_one("#summary").render())
            assert "2025-08-08T00:00:00Z" in summary
            await pilot.press("q")

    asyncio.run(drive())
