"""The four rooms: arrows only point down, and nothing below the console imports Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


def test_lower_rooms_and_the_cli_never_load_textual():
    # Walk every submodule of casefile, connectors and playbooks, plus the CLI, in a fresh interpreter.
    code = """
import importlib, pkgutil, sys
for pkg in ("casefile", "connectors", "playbooks"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
import tui.cli, tui.demo, tui.safe_text
tui.cli.build_parser()
loaded = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print("LOADED", loaded)
assert not loaded, loaded
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LOADED []" in r.stdout
