"""The parser fuzzer as a command.

    python -m tests.fuzz --full              # >= 100,000 inputs per format family (80,000 mutated + 20,000
                                             # hypothesis-built + 40 with 1 MB lines/values or 10,000-deep JSON),
                                             # and 60 mutated files per family ingested end to end
    python -m tests.fuzz                     # the CI slice's size (what tests/fuzz/test_fuzz_parsers.py runs)
    python -m tests.fuzz --family csv --mutations 5000 --hypothesis 0 --seed 7
    python -m tests.fuzz --replay FILE --format NAME   # re-run one kept input, with the traceback

Failing inputs are kept under `--out` (default: a `stanch-fuzz` folder in the temp dir), one `.bin` with a `.txt`
beside it. Prints one row per family; exits 1 when any input crashed a parser or broke a property.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests import fuzz
from tests.fuzz import strategies as S


def _replay(path: str, fmt_name: str) -> int:
    from casefile import formats
    from casefile.prepare import prepare
    from casefile.records import Parsed
    from casefile.sources import BytesSource

    fmt = formats.get(fmt_name)
    if fmt is None:
        print(f"--format {fmt_name}: unknown; one of: {', '.join(f.name for f in formats.all_formats())}")
        return 2
    data = Path(path).read_bytes()
    try:
        for item in fmt.parse(BytesSource(path, data)):
            out = prepare(item, fmt.name) if isinstance(item, Parsed) else item
            print(f"line {item.line}: {'event' if isinstance(out, list) else out!r}")
    except Exception:
        traceback.print_exc()
        return 1
    stats = fuzz.Stats("replay")
    token = next((t for t in S.canaries() if t.encode() in data), None)  # a planted canary, if the input has one
    fuzz.check(fmt, data, stats, S.family_of(fmt.name, path, data), token)
    for kind, msgs in stats.samples.items():
        print(f"{kind}: {msgs[0]}")
    return 1 if stats.violations else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the full run: >= 100,000 inputs per family")
    p.add_argument("--seed", type=int, default=fuzz.env_seed())
    p.add_argument("--family", action="append", choices=S.FAMILIES, help="only these families (repeatable)")
    p.add_argument("--mutations", type=int, help="mutated inputs per family")
    p.add_argument("--hypothesis", type=int, help="hypothesis-built inputs per family")
    p.add_argument("--big", type=int, help="inputs with a 1 MB line/value or 10,000-deep JSON per family")
    p.add_argument("--ingest", type=int, help="mutated files ingested end to end per family")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "stanch-fuzz"))
    p.add_argument("--replay", metavar="FILE")
    p.add_argument("--format", metavar="NAME", help="with --replay: the format to parse FILE with")
    args = p.parse_args(argv)
    if args.replay:
        if not args.format:
            p.error("--replay needs --format NAME (the .txt beside a kept input names it)")
        return _replay(args.replay, args.format)

    size = fuzz.sizes(args.full)
    for name in size:
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    out = Path(args.out)
    families = args.family or list(S.FAMILIES)
    print(f"seed {args.seed}; per family: {size['mutations']} mutated + {size['hypothesis']} hypothesis-built +"
          f" {size['big']} big inputs, {size['ingest']} files ingested; failing inputs kept in {out}")
    header = (f"{'family':9} {'formats':>7} {'inputs':>8} {'parses':>8} {'events':>8} {'malformed':>9} {'skipped':>8}"
              f" {'crashes':>7} {'broken':>6} {'planted':>7} {'ingested':>8} {'slowest s':>9} {'seconds':>8}")
    print(header)
    print("-" * len(header))
    failed = False
    notes: list[str] = []
    total_started = time.perf_counter()
    for family in families:
        started = time.perf_counter()
        stats = fuzz.run_mutations(family, size["mutations"], args.seed, out, big=size["big"])
        if size["hypothesis"]:
            stats.merge(fuzz.run_hypothesis(family, size["hypothesis"], args.seed, out))
        ing = fuzz.IngestCheck()
        if size["ingest"]:
            with tempfile.TemporaryDirectory(prefix=f"stanch-fuzz-{family}-") as work:
                ing = fuzz.ingest_round(family, size["ingest"], args.seed, Path(work))
        seconds = time.perf_counter() - started
        broken = sum(n for k, n in stats.violations.items() if k != "crash")
        fmts = len({f for f in stats.by_format})
        print(f"{family:9} {fmts:>7} {stats.inputs:>8} {stats.parses:>8} {stats.events:>8} {stats.malformed:>9}"
              f" {stats.skipped:>8} {stats.crashes:>7} {broken:>6} {stats.planted:>7} {ing.files:>8}"
              f" {stats.slowest:>9.3f} {seconds:>8.1f}", flush=True)
        for kind, msgs in stats.samples.items():
            failed = True
            notes.append(f"{family}: {stats.violations[kind]} x {kind}, e.g. {msgs[0]}")
        chunked = [m for m in ing.mismatches if "3-line chunks" in m]
        for what, items in (("ingest mismatch", [m for m in ing.mismatches if m not in chunked]),
                            ("verify", ing.tampers), ("leak", ing.leaks), ("ingest error", ing.errors)):
            if items:
                failed = True
                notes.append(f"{family}: {len(items)} x {what}, e.g. {items[0]}")
        if chunked:
            notes.append(f"{family}: {len(chunked)} x known (chunk re-detection, see test_fuzz_parsers): {chunked[0]}")
        for reason, count in stats.caught.most_common(3):
            notes.append(f"{family}: {count} x reported a caught exception: {reason}")
    print("-" * len(header))
    print(f"total {time.perf_counter() - total_started:.1f} s")
    for note in notes:
        print(note)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
