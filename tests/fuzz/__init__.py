"""Fuzzing every log parser: mutation fuzzing seeded from the committed fixtures, and hypothesis-built records.

For each format family (see `tests.fuzz.strategies` for the families and their seeds) the runner feeds
inputs to the parsers in memory (`casefile.sources.BytesSource`) and prepares every event the way ingest
does (`casefile.prepare.prepare`: time, redaction, keys, hashes). It checks, for every input:

- **no crash**: neither `fmt.parse` nor `prepare` raises (any exception is a crash; the input is written to
  the output folder with its traceback, for reproduction with `python -m tests.fuzz --replay FILE`);
- **line numbers**: every event and every Problem names a line in 1..(lines in the input); where a format
  numbers the items of a JSON document as lines (arrays, `Records`/`value` wrappers, pretty-printed objects),
  in 1..max(lines, results + 1);
- **reasons**: every Problem is `malformed` or `skipped` with a non-empty reason;
- **every line accounted for**: where the input is one record per line, every non-blank line has an event or
  a Problem (the exceptions, in `accounting_applies`, are the shapes where the formats document that one record
  spans lines: pretty-printed JSON objects, quoted CSV cells holding line breaks, JSON wrappers numbered by item);
- **redaction**: a fake credential of a known shape planted in a field is in no column of a prepared event,
  in no credential fact and in no Problem reason.

`ingest_round` also ingests mutated files end to end into a case: the case opens, `casefile.audit.verify`
finds nothing, the summary's events/malformed/skipped counts equal what the parser and `prepare` gave in
memory, and the planted credential is in no byte of the case file, its WAL or its shared memory file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import connectors  # noqa: F401  (registers every format)
from casefile import formats
from casefile.pipeline import stored_reason
from casefile.prepare import P_COLUMNS, P_CRED_FACTS, P_EXPOSED, P_SUBJ_FACTS, prepare
from casefile.records import Parsed, Problem
from casefile.sources import BytesSource, UnreadableInput
from tests.fuzz import strategies as S

# A reason naming a Python exception type means a parser caught its own bug ("unreadable … (KeyError)").
_CAUGHT = ("Error)", "Error:", "Exception)", "Exception:")
MAX_SAMPLES = 5  # violation messages kept per kind


@dataclass
class Stats:
    """What one family's run saw."""

    family: str
    inputs: int = 0
    parses: int = 0
    events: int = 0
    malformed: int = 0
    skipped: int = 0
    crashes: int = 0
    planted: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    slowest_what: str = ""
    violations: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    caught: Counter[str] = field(default_factory=Counter)  # reasons that name an exception, by format
    by_format: Counter[str] = field(default_factory=Counter)
    ingests: int = 0
    written: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return self.malformed + self.skipped

    def violation(self, kind: str, msg: str) -> None:
        self.violations[kind] += 1
        keep = self.samples.setdefault(kind, [])
        if len(keep) < MAX_SAMPLES:
            keep.append(msg)

    def merge(self, other: Stats) -> None:
        for name in ("inputs", "parses", "events", "malformed", "skipped", "crashes", "planted", "seconds", "ingests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.slowest > self.slowest:
            self.slowest, self.slowest_what = other.slowest, other.slowest_what
        self.violations.update(other.violations)
        for k, v in other.samples.items():
            self.samples.setdefault(k, []).extend(v[: MAX_SAMPLES - len(self.samples.get(k, []))])
        self.caught.update(other.caught)
        self.by_format.update(other.by_format)
        self.written.extend(other.written)


def count_lines(data: bytes) -> int:
    """Lines as `FileSource.lines` numbers them (split at `\\n`; a last line without one counts)."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


# Formats that read CSV: they number lines as the csv module does, where a lone CR also ends a line (as in
# spreadsheet tools), so a file with lone CRs has more CSV lines than `\n`-lines.
CSV_ONLY = frozenset({"okta-csv", "salesforce-eventlogfile"})  # the Entra formats read CSV when it is not JSON
CSV_FORMATS = frozenset({"okta-csv", "salesforce-eventlogfile", "entra-signin", "entra-audit", "entra-ual"})


def count_csv_lines(data: bytes) -> int:
    """Lines as the csv module counts them (`\r\n`, `\n` and a lone `\r` each end one)."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    return sum(1 for _ in text)


def _readable_part(data: bytes) -> bytes:
    """What the parsers read of `data`: sources decompress gzip by its magic, as far as the stream goes."""
    if data[:2] != b"\x1f\x8b":
        return data
    d = zlib.decompressobj(wbits=31)
    try:
        return d.decompress(data)
    except zlib.error:
        return b""


def rejected_whole(results: list[tuple[int, str, str]]) -> bool:
    """True when the parser refused the file at its header (blank lines, then one malformed Problem naming the
    header, and stopped): the CSV formats read nothing of a file whose first row is not their header, and say so
    once."""
    rest = [r for r in results if not (r[1] == "skipped" and r[2] == "blank line")]
    return len(rest) == 1 and rest[0][1] == "malformed" and "header" in rest[0][2]


_LONE_CR = re.compile(rb"\r(?!\n)")


def csv_rows(data: bytes) -> list[tuple[int, int]] | None:
    """(first line, last line) of every CSV record as the csv module reads it (a quoted cell may hold line
    breaks, and an unclosed quote runs on); None when a lone CR makes CSV lines differ from `\n`-lines."""
    if _LONE_CR.search(data):
        return None
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    spans: list[tuple[int, int]] = []
    last = 0
    while True:
        try:
            next(reader)
        except StopIteration:
            return spans
        except csv.Error:
            pass
        spans.append((last + 1, max(last + 1, reader.line_num)))
        last = reader.line_num


def unaccounted(data: bytes, fmt: str, lines_seen: set[int], nlines: int) -> list[int] | None:
    """Non-blank lines with neither an event nor a Problem; None where the check does not apply (see
    `accounting_applies`). A CSV record spanning lines is accounted for by a result on any of its lines."""
    nonblank = [i for i, raw in enumerate(data.split(b"\n"), 1)
                if i <= nlines and raw.decode("utf-8", "replace").strip().lstrip("\ufeff").strip()]
    if fmt in CSV_ONLY or fmt in CSV_FORMATS and _first_byte(data) not in (b"{", b"["):
        spans = csv_rows(data)
        if spans is None:
            return None
        owner = {i: span for span in spans for i in range(span[0], span[1] + 1)}
        return [i for i in nonblank
                if i in owner and not any(j in lines_seen for j in range(owner[i][0], owner[i][1] + 1))]
    if not accounting_applies(data):
        return None
    return [i for i in nonblank if i not in lines_seen]


_WRAPPER_KEYS = ("Records", "records", "value", "items")


_LEAD = re.compile(r"[\s\ufeff]*")


def _head(data: bytes) -> bytes:
    """`data` from its first character that is neither whitespace (Unicode's: parsers strip with `str.strip`, so
    U+2028 or a form feed before `[` still makes a JSON array) nor a BOM."""
    text = data[:1 << 16].decode("utf-8", "replace")
    skipped = _LEAD.match(text).end()  # type: ignore[union-attr]
    return data[len(text[:skipped].encode("utf-8", "replace")):] if skipped else data


def _first_byte(data: bytes) -> bytes:
    return _head(data)[:1]


def item_numbered(data: bytes) -> bool:
    """True when a parser may number this input's records by item rather than by line: a JSON array, a
    wrapper object, or a JSON object whose first line does not close it (pretty-printed)."""
    head = _head(data)
    if head[:1] == b"[":
        return True
    if head[:1] != b"{":
        return False
    first = head.split(b"\n", 1)[0]
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return True
    return isinstance(obj, dict) and any(k in obj for k in _WRAPPER_KEYS)


def accounting_applies(data: bytes) -> bool:
    """True when the input is one record per line, so every non-blank line must have an event or a Problem.

    Not checked (the formats document why): inputs whose records are numbered by item (`item_numbered`), and
    inputs holding a line that opens a JSON object or array it does not close on that line (Kong, Vault,
    GitHub and Google read such a line as the start of a pretty-printed object and report the whole object at
    its first line). The CSV formats are checked by CSV record instead (`unaccounted`).
    """
    if item_numbered(data):
        return False
    for raw in data.split(b"\n"):
        text = raw.decode("utf-8", "replace").strip().lstrip("\ufeff").strip()
        if text[:1] in ("{", "["):
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                return False
            if isinstance(obj, dict) and any(k in obj for k in _WRAPPER_KEYS):
                return False
    return True


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


@dataclass
class Outcome:
    """What one parse gave: counts, the problems (line, kind, reason) and prepared rows (for comparisons)."""

    events: int = 0
    malformed: int = 0
    skipped: int = 0
    lines: set[int] = field(default_factory=set)
    crash: str | None = None
    unreadable: str | None = None  # the input is not what its bytes claim (casefile.sources.UnreadableInput)


def check(fmt: formats.Format, data: bytes, stats: Stats, family: str, token: str | None = None,
          what: str = "", out_dir: Path | None = None) -> Outcome:
    """Parse `data` with `fmt`, prepare every event, and check the properties; never raises."""
    out = Outcome()
    stats.parses += 1
    stats.by_format[fmt.name] += 1
    plain = _readable_part(data)
    nlines = count_lines(plain)
    loose = item_numbered(plain)
    results: list[tuple[int, str, str]] = []  # (line, kind, reason); kind "event" for events
    started = time.perf_counter()
    try:
        for item in fmt.parse(BytesSource(f"fuzz-{family}", data)):
            if isinstance(item, Parsed):
                row = prepare(item, fmt.name)
                if isinstance(row, Problem):
                    results.append((row.line, row.kind, row.reason))
                    continue
                results.append((item.line, "event", ""))
                if token is not None:
                    stored = [*row[P_COLUMNS:], *_strings(row[P_CRED_FACTS]), *_strings(row[P_SUBJ_FACTS]),
                              *(s for e in row[P_EXPOSED] for s in _strings(e))]
                    leaks = [s for s in stored if isinstance(s, str) and token in s]
                    if leaks:
                        stats.violation("redaction", f"{fmt.name}: {token[:8]}… kept in {leaks[0][:120]!r} ({what})")
                        _write(out_dir, stats, "redaction", fmt.name, data, f"kept in: {leaks[0][:300]!r}", what)
            elif isinstance(item, Problem):
                results.append((item.line, item.kind, item.reason))
            else:
                stats.violation("type", f"{fmt.name}: yielded {type(item).__name__}")
    except UnreadableInput as e:  # gzip's magic and not gzip (or cut short): ingest reports it, one line
        out.unreadable = str(e)
        if "\n" in out.unreadable or not out.unreadable.startswith(f"fuzz-{family}: "):
            stats.violation("reason", f"{fmt.name}: unreadable input reported as {out.unreadable[:120]!r}")
    except Exception as e:  # a crash: the property that matters most
        out.crash = f"{type(e).__name__}: {e}"
        stats.crashes += 1
        stats.violation("crash", f"{fmt.name}: {out.crash[:200]} ({what})")
        _write(out_dir, stats, "crash", fmt.name, data, traceback.format_exc(), what)
    elapsed = time.perf_counter() - started
    if elapsed > stats.slowest:
        stats.slowest, stats.slowest_what = elapsed, f"{fmt.name} {len(data)} bytes {what}"
    bound = max(nlines, len(results) + 1) if loose else nlines
    if fmt.name in CSV_FORMATS and b"\r" in data:
        bound = max(bound, count_csv_lines(data))
    for line, kind, reason in results:
        if not isinstance(line, int) or isinstance(line, bool) or not 1 <= line <= bound:
            stats.violation("line-number", f"{fmt.name}: {kind} at line {line!r} of {nlines} ({what})")
            _write(out_dir, stats, "line-number", fmt.name, data, f"{kind} at line {line!r}: {reason}", what)
        if kind == "event":
            out.events += 1
            out.lines.add(line)
            continue
        out.lines.add(line)
        if kind == "malformed":
            out.malformed += 1
        elif kind == "skipped":
            out.skipped += 1
        else:
            stats.violation("problem-kind", f"{fmt.name}: kind {kind!r}")
        if not isinstance(reason, str) or not reason.strip():
            stats.violation("reason", f"{fmt.name}: empty reason at line {line} ({what})")
        elif reason.endswith(_CAUGHT) or "Error: " in reason or "Error)" in reason:
            stats.caught[f"{fmt.name}: {reason[:90]}"] += 1
            _write(out_dir, stats, "caught", fmt.name, data, f"line {line}: {reason}", what)
        if token is not None and isinstance(reason, str) and token in stored_reason(reason):
            stats.violation("redaction", f"{fmt.name}: {token[:8]}… kept in a Problem reason {reason[:120]!r}")
            _write(out_dir, stats, "redaction-reason", fmt.name, data, reason, what)
    missing = None if out.crash is not None or out.unreadable is not None or rejected_whole(results) else \
        unaccounted(data, fmt.name, out.lines, nlines)
    if missing:
        stats.violation("unaccounted", f"{fmt.name}: lines {missing[:5]} of {nlines} have neither an event nor a"
                                       f" Problem ({what})")
        _write(out_dir, stats, "unaccounted", fmt.name, data, f"lines {missing}", what)
    stats.events += out.events
    stats.malformed += out.malformed
    stats.skipped += out.skipped
    return out


_WRITTEN: set[str] = set()


def _write(out_dir: Path | None, stats: Stats, kind: str, fmt: str, data: bytes, detail: str, what: str) -> None:
    """Keep a failing input for reproduction: `<out>/<family>/<kind>-<format>-<sha12>.bin` and a `.txt` beside it.
    At most 20 files per (family, kind, format)."""
    if out_dir is None:
        return
    key = f"{stats.family}/{kind}/{fmt}"
    n = sum(1 for w in _WRITTEN if w.startswith(key + "/"))
    if n >= 20:
        return
    sha = hashlib.sha256(data).hexdigest()[:12]
    _WRITTEN.add(f"{key}/{sha}")
    folder = out_dir / stats.family
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"{kind}-{fmt}-{sha}"
    base.with_suffix(".bin").write_bytes(data)
    base.with_suffix(".txt").write_text(f"format: {fmt}\nfamily: {stats.family}\nhow: {what}\n\n{detail}\n")
    stats.written.append(str(base.with_suffix(".bin")))


# ---------------------------------------------------------------------------------------------- runners

CROSS_SHARE = 0.25  # share of inputs also parsed by another, random format (every parser meets every shape)
PLANT_SHARE = 0.3  # share of inputs that carry a planted canary credential


def shipped_formats() -> list[formats.Format]:
    """The formats stanch ships: test modules register toy formats of their own (tests/casefile/toy.py)."""
    return [f for f in formats.all_formats() if not f.parse.__module__.startswith("tests.")]


def _formats() -> list[formats.Format]:
    return shipped_formats()


def one_input(fmt_name: str, data: bytes, family: str, rng: random.Random, stats: Stats, what: str,
              out_dir: Path | None) -> None:
    """Check one input: with its own format, sometimes with a planted canary, sometimes with another format."""
    stats.inputs += 1
    fmt = formats.get(fmt_name)
    assert fmt is not None, fmt_name
    token = None
    if rng.random() < PLANT_SHARE:
        token = rng.choice(S.canaries())
        planted = S.plant(data, family, token, rng)
        if planted is None:
            token = None
        else:
            data = planted
            stats.planted += 1
    check(fmt, data, stats, family, token, what, out_dir)
    if rng.random() < CROSS_SHARE:
        other = rng.choice(_formats())
        if other.name != fmt.name:
            check(other, data, stats, family, token, f"{what}; seed format {fmt_name}", out_dir)


def run_mutations(family: str, n: int, seed: int, out_dir: Path | None = None, big: int = 0) -> Stats:
    """`n` mutated samples of the family's seeds, plus `big` inputs with a 1 MB line or value or a value nested
    10,000 deep (cycling through the kinds)."""
    stats = Stats(family)
    rng = random.Random(f"{seed}:{family}")
    mut = S.Mutator(rng)
    pool = S.seeds_of(family)
    started = time.perf_counter()
    for _ in range(n):
        s = rng.choice(pool)
        data, ops = mut.mutate(mut.sample(s))
        one_input(s.format, data, family, rng, stats, f"{s.path} mutated by {'+'.join(ops)}", out_dir)
    for i in range(big):
        s = rng.choice(pool)
        kind = S.BIG_KINDS[i % len(S.BIG_KINDS)]
        one_input(s.format, mut.big(s, kind), family, rng, stats, f"{s.path} with {kind}", out_dir)
    stats.seconds = time.perf_counter() - started
    return stats


def run_hypothesis(family: str, n: int, seed: int, out_dir: Path | None = None) -> Stats:
    """`n` documents built by the family's hypothesis strategy (fixed seed, no example database)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st
    from hypothesis.configuration import set_hypothesis_home_dir

    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        # Hypothesis caches what it learns (constants, Unicode tables) under `.hypothesis` in the working
        # directory: keep that out of the repository (there is no example database: database=None).
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "stanch-fuzz-hypothesis")

    stats = Stats(family)
    started = time.perf_counter()

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(S.STRATEGIES[family], st.randoms(use_true_random=False))
    def prop(doc: tuple[str, bytes], rnd: random.Random) -> None:
        fmt_name, data = doc
        one_input(fmt_name, data, family, rnd, stats, "hypothesis", out_dir)

    prop()
    stats.seconds = time.perf_counter() - started
    return stats


@dataclass
class IngestCheck:
    """What one end-to-end ingest round found wrong (empty lists: nothing)."""

    files: int = 0
    mismatches: list[str] = field(default_factory=list)
    tampers: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def ingest_round(family: str, n: int, seed: int, workdir: Path, workers_share: float = 0.5) -> IngestCheck:
    """Ingest `n` mutated files (each with a planted canary) into fresh cases; compare with the in-memory parse.

    About `workers_share` of the files go through worker processes cut into 3-line chunks, for the formats that
    say they may be split (a chunk boundary must not change what a splittable format reports).
    """
    from casefile import pipeline
    from casefile.audit import verify
    from casefile.case import create_case, open_case
    from casefile.ingest import ingest

    result = IngestCheck()
    rng = random.Random(f"{seed}:{family}:ingest")
    mut = S.Mutator(rng)
    pool = S.seeds_of(family)
    tokens = S.canaries()
    for i in range(n):
        s = rng.choice(pool)
        data, ops = mut.mutate(mut.sample(s))
        token = tokens[i % len(tokens)]
        planted = S.plant(data, family, token, rng)
        data = planted if planted is not None else data
        what = f"{s.path} mutated by {'+'.join(ops)}"
        fmt = formats.get(s.format)
        assert fmt is not None
        expect = check(fmt, data, Stats(family), family)
        folder = workdir / f"{family}-{i}"
        folder.mkdir(parents=True)
        log = folder / "input.log"
        log.write_bytes(data)
        case_dir = folder / "case"
        case_dir.mkdir()
        split = rng.random() < workers_share
        saved = pipeline.CHUNK_LINES
        if split:
            pipeline.CHUNK_LINES = 3
        try:
            with create_case(case_dir / "fuzz.stanch") as case:
                (summary,) = ingest(case, [str(log)], format_name=fmt.name, workers=2 if split else 0)
        finally:
            pipeline.CHUNK_LINES = saved
        result.files += 1
        if summary.error:
            result.errors.append(f"{what}: {summary.error}")
        if expect.crash is None and summary.workers == 0:
            got = (summary.events_seen, summary.malformed, summary.skipped)
            want = (expect.events, expect.malformed, expect.skipped)
            if got != want:
                result.mismatches.append(f"{fmt.name} {what}: ingest (events, malformed, skipped) {got}, parse {want}")
        elif expect.crash is None and summary.workers:
            got = (summary.events_seen, summary.malformed, summary.skipped)
            want = (expect.events, expect.malformed, expect.skipped)
            if got != want:
                result.mismatches.append(f"{fmt.name} {what}: ingest in 3-line chunks {got}, one stream {want}")
        with open_case(case_dir / "fuzz.stanch") as case:
            _, _, tampers = verify(case.conn)
            result.tampers.extend(f"{what}: {t}" for t in tampers)
        for p in sorted(case_dir.iterdir()):
            if p.is_file() and token.encode() in p.read_bytes():
                result.leaks.append(f"{fmt.name} {what}: {token[:8]}… found in {p.name}")
    return result


def sizes(full: bool) -> dict[str, int]:
    """Inputs per family: the full run (`python -m tests.fuzz --full`) and the CI slice."""
    if full:
        return {"mutations": 80_000, "hypothesis": 20_000, "big": 40, "ingest": 60}
    return {"mutations": 400, "hypothesis": 100, "big": 4, "ingest": 3}


def env_seed(default: int = 12) -> int:
    return int(os.environ.get("STANCH_FUZZ_SEED", default))
