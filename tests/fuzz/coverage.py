"""Coverage-guided fuzzing of every parser with atheris (libFuzzer for Python), beside the seeded mutation and
hypothesis runs of `python -m tests.fuzz`. Not part of the test suite: atheris is an optional extra.

    .venv/bin/pip install -e '.[fuzz]'
    python -m tests.fuzz.coverage --seconds 600                 # every shipped format, 10 minutes
    python -m tests.fuzz.coverage --format okta-system-log --runs 200000
    python -m tests.fuzz.coverage --seconds 60 -- -print_final_stats=1   # extra libFuzzer flags after --

The first byte of an input picks the format (among those selected); the rest is the file. The corpus starts from
every committed fixture (each prefixed with its format's byte) and grows in `--corpus` (default: a
`stanch-atheris` folder in the temp dir) as libFuzzer finds inputs reaching new code. Each input goes through
`tests.fuzz.check` — the parser, `prepare`, and the properties of tests/fuzz/__init__.py (no crash; line numbers
inside the input; every line accounted for; reasons) — and any broken property is raised, so libFuzzer stops and
writes the input to `crash-<sha1>` in the working directory (`python -m tests.fuzz --replay FILE --format NAME`
re-runs it without the first byte: strip it with `tail -c +2`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests import fuzz
from tests.fuzz import strategies as S

MAX_LEN = 1 << 16  # libFuzzer's input size cap: long enough for every fixture's head, short enough to mutate fast


class PropertyBroken(Exception):
    """A property of tests/fuzz/__init__.py failed for one input (libFuzzer reports it as a crash)."""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.coverage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", action="append", help="only this format (repeatable); default: every shipped one")
    p.add_argument("--seconds", type=int, default=600, help="stop after this long (libFuzzer -max_total_time)")
    p.add_argument("--runs", type=int, help="stop after this many inputs (libFuzzer -runs)")
    p.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "stanch-atheris")
    a = p.parse_args(args)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    chosen = [f for f in fuzz.shipped_formats() if not a.format or f.name in a.format]
    if not chosen:
        print(f"--format: none of {a.format} is a shipped format", file=sys.stderr)
        return 2
    index = {f.name: i for i, f in enumerate(chosen)}
    a.corpus.mkdir(parents=True, exist_ok=True)
    for seed in S.seeds():
        if seed.format in index:
            data = bytes([index[seed.format]]) + seed.data[:MAX_LEN - 1]
            (a.corpus / f"seed-{seed.path.replace('/', '_')}").write_bytes(data)
    stats = fuzz.Stats("atheris")

    def one(data: bytes) -> None:
        if not data:
            return
        fmt = chosen[data[0] % len(chosen)]
        body = data[1:]
        before = sum(stats.violations.values())
        out = fuzz.check(fmt, body, stats, S.family_of(fmt.name, "", body), what="atheris")
        if out.crash is not None or sum(stats.violations.values()) > before:
            kind, msgs = next(iter(stats.samples.items()))
            raise PropertyBroken(f"{fmt.name}: {kind}: {msgs[-1]}")

    atheris.instrument_all()  # the parsers, prepare and redaction are already imported (tests.fuzz imports them)
    flags = [f"-max_total_time={a.seconds}", f"-max_len={MAX_LEN}", "-timeout=20", "-rss_limit_mb=4096",
             "-print_final_stats=1"]
    if a.runs is not None:
        flags.append(f"-runs={a.runs}")
    print(f"atheris: {len(chosen)} formats, corpus {a.corpus}", flush=True)
    atheris.Setup([sys.argv[0], *flags, *extra, str(a.corpus)], one)
    atheris.Fuzz()  # exits the process when libFuzzer stops
    return 0


if __name__ == "__main__":
    sys.exit(main())
