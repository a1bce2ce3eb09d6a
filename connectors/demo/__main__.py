"""`python -m connectors.demo OUT_DIR [--events N] [--seed N] [--truth DIR]`: write the demo incident."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from connectors.demo import DEFAULT_EVENTS, MIN_EVENTS, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m connectors.demo", description=__doc__)
    ap.add_argument("out_dir", type=Path, help="directory for gateway.jsonl, okta.jsonl, vault_audit.jsonl, "
                    "vault_token_lookup.jsonl (logs) and salesforce_cases.csv (data for `stanch ingest-data`)")
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="about this many lines in total")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--truth", type=Path, default=None, help="also write truth.json here (tests only)")
    args = ap.parse_args(argv)
    if args.events < MIN_EVENTS:
        print(f"--events {args.events}: use at least {MIN_EVENTS}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    files = generate(args.out_dir, events=args.events, seed=args.seed, truth_dir=args.truth)
    took = time.perf_counter() - started
    c = files.counts
    print(f"gateway {c['gateway']}  okta {c['okta']}  vault {c['vault']}  total {c['total']}  "
          f"({c['total'] / took:,.0f} events/s) -> {args.out_dir}")
    if files.truth:
        print(f"truth -> {files.truth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
