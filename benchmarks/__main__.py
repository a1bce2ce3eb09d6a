"""`python -m benchmarks`: stanch's ingest speed, against baselines measured in the same run.

Every stanch figure is compared with, on the same input file and in the same run:
- `sqlite-utils insert DB events FILE --nl` (a popular JSON-lines loader: no parsing semantics, no indexes);
- a bare floor: orjson + `executemany` into a table with no index (what Python + SQLite cost at the least).

Inputs come from the demo generator (`connectors.demo`); a size larger than one generator run is made by
concatenating runs with consecutive seeds (distinct tokens and ids, the same August 2025 story).

    python -m benchmarks --smoke                      # CI: small sizes, checks the harness works
    python -m benchmarks --gateway 1000000 --okta 1000000 --append-base 10000000 --append 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.machine import TreeRss, describe

ROOT = Path(__file__).resolve().parents[1]
SHARE = {"gateway": 0.76, "okta": 0.11}  # the demo generator's share of each file (measured)
FILES = {"gateway": "gateway.jsonl", "okta": "okta.jsonl"}


def make_input(kind: str, n: int, workdir: Path) -> Path:
    """A file of exactly `n` demo lines of `kind` (cached in workdir across runs)."""
    from connectors.demo import generate

    out = workdir / f"{kind}-{n}.jsonl"
    if out.exists():
        return out
    part = out.with_suffix(".part")
    written, seed = 0, 1
    with open(part, "wb") as dst:
        while written < n:
            per_run = int(min(1_300_000, max(20_000, (n - written) / SHARE[kind] * 1.05)))
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                generate(Path(tmp), events=per_run, seed=seed)
                with open(Path(tmp) / FILES[kind], "rb") as src:
                    for line in src:
                        dst.write(line)
                        written += 1
                        if written >= n:
                            break
            seed += 1
    part.rename(out)
    return out


FIXTURES = ROOT / "tests" / "fixtures"


def make_family_input(family: str, n: int, workdir: Path) -> tuple[Path, str]:
    """A file of `n` records for a format family the demo generator does not write, grown from a committed
    fixture: `text` from the 10,000-line combined access log; `csv` from the Salesforce EventLogFile CSV
    fixtures, each copy of a row with a fresh REQUEST_ID. Returns (file, format name)."""
    if family == "text":
        out = workdir / f"text-combined-{n}.log"
        if not out.exists():
            base = (FIXTURES / "nginx" / "elastic_examples_apache_logs_combined.log").read_bytes().splitlines(True)
            with open(out, "wb") as fh:
                for i in range(n):
                    fh.write(base[i % len(base)])
        return out, "nginx-combined"
    if family == "csv":
        import csv
        import io

        out = workdir / f"csv-eventlogfile-{n}.csv"
        if not out.exists():
            # The first section of the hand-made Drift EventLogFile (up to the next concatenated header).
            src = FIXTURES / "salesforce" / "hand_eventlogfile_drift_concat.csv"
            reader = csv.DictReader(io.StringIO(src.read_text()))
            header = list(reader.fieldnames or [])
            rows: list[dict[str, str]] = []
            for row in reader:
                if row.get("EVENT_TYPE") == "EVENT_TYPE":
                    break
                rows.append(row)
            if not rows:
                raise SystemExit("no Salesforce EventLogFile CSV fixture with a REQUEST_ID column to grow")
            with open(out, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=header)
                w.writeheader()
                for i in range(n):
                    row = dict(rows[i % len(rows)])
                    row["REQUEST_ID"] = f"{row.get('REQUEST_ID', 'r')}-{i}"
                    w.writerow(row)
        return out, "salesforce-eventlogfile"
    if family == "cloudtrail":
        out = workdir / f"cloudtrail-{n}.jsonl"
        if not out.exists():
            # Elastic's CloudTrail records (one per line), each copy with a fresh eventID.
            base = []
            for name in ("elastic_cloudtrail_test-console-login-json.log", "elastic_cloudtrail_test-assume-role-json.log",
                         "elastic_cloudtrail_test-batch-get-secret-value-json.log"):
                for line in (FIXTURES / "aws" / name).read_bytes().splitlines():
                    if line.strip():
                        base.append(orjson.loads(line))
            with open(out, "wb") as fh:
                for i in range(n):
                    rec = dict(base[i % len(base)])
                    rec["eventID"] = f"{rec.get('eventID', 'e')}-{i}"
                    fh.write(orjson.dumps(rec) + b"\n")
        return out, "aws-cloudtrail"
    raise ValueError(family)


def floor_lines(path: Path, workdir: Path) -> float:
    """The floor for a text format: each line into a one-column table with executemany, no index."""
    db = workdir / "floor-lines.db"
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE e(line)")
    started = time.perf_counter()
    with open(path, "rb") as fh:
        batch: list[tuple[str]] = []
        for line in fh:
            batch.append((line.decode("utf-8", "replace"),))
            if len(batch) >= 20_000:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO e VALUES (?)", batch)
                conn.execute("COMMIT")
                batch = []
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO e VALUES (?)", batch)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    db.unlink(missing_ok=True)
    return seconds


def family(name: str, n: int, workdir: Path) -> dict[str, Any]:
    path, fmt = make_family_input(name, n, workdir)
    mb = path.stat().st_size / 1e6
    case = new_case(workdir / f"family-{name}.stanch")
    run = stanch_ingest(case, path, fmt)
    row: dict[str, Any] = {"family": name, "format": fmt, "events": run["added"], "mb": mb, "stanch_s": run["seconds"],
                           "stanch_eps": run["added"] / run["seconds"], "stanch_mbps": mb / run["seconds"],
                           "peak_rss_mib": run["peak_rss_mib"]}
    if name in ("csv", "cloudtrail"):
        db = workdir / f"sqlite-utils-{name}.db"
        db.unlink(missing_ok=True)
        exe = shutil.which("sqlite-utils", path=str(Path(sys.executable).parent)) or "sqlite-utils"
        su, _, _, _ = run_tree([exe, "insert", str(db), "events", str(path), "--csv" if name == "csv" else "--nl"])
        db.unlink(missing_ok=True)
        row["baseline"] = "sqlite-utils insert --csv" if name == "csv" else "sqlite-utils insert --nl"
    else:
        su = floor_lines(path, workdir)
        row["baseline"] = "floor (lines, executemany)"
    row["baseline_eps"] = n / su
    row["ratio"] = su / run["seconds"]
    for p in (case, Path(f"{case}-wal"), Path(f"{case}-shm")):
        p.unlink(missing_ok=True)
    return row


def split(path: Path, first: int, workdir: Path) -> tuple[Path, Path]:
    """The first `first` lines and the rest, as two files."""
    a, b = workdir / f"{path.stem}-head{first}.jsonl", workdir / f"{path.stem}-tail{first}.jsonl"
    if not (a.exists() and b.exists()):
        with open(path, "rb") as src, open(a, "wb") as fa, open(b, "wb") as fb:
            for i, line in enumerate(src):
                (fa if i < first else fb).write(line)
    return a, b


def run_tree(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int, str]:
    """(seconds, peak RSS of the process tree in KiB, peak of the main process, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    rss = TreeRss(proc.pid)
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            rss.sample()
            done.wait(0.1)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    out, err = proc.communicate()
    done.set()
    t.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return seconds, rss.peak_kb, rss.peak_main_kb, out.decode()


def baseline_sqlite_utils(path: Path, workdir: Path) -> float:
    db = workdir / "sqlite-utils.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    exe = shutil.which("sqlite-utils", path=str(Path(sys.executable).parent)) or "sqlite-utils"
    seconds, _, _, _ = run_tree([exe, "insert", str(db), "events", str(path), "--nl"])
    db.unlink(missing_ok=True)
    return seconds


def baseline_floor(path: Path, workdir: Path) -> float:
    """orjson + executemany into a table with no index: nested values stored as JSON text."""
    db = workdir / "floor.db"
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    started = time.perf_counter()
    cols: list[str] = []
    batch: list[tuple[Any, ...]] = []
    sql = ""
    with open(path, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            if not cols:
                cols = list(rec)
                conn.execute(f"CREATE TABLE e({', '.join(f'c{i}' for i in range(len(cols)))})")
                sql = f"INSERT INTO e VALUES ({','.join('?' * len(cols))})"
            batch.append(tuple(v if not isinstance(v, dict | list) else orjson.dumps(v)
                               for v in (rec.get(c) for c in cols)))
            if len(batch) >= 20_000:
                conn.execute("BEGIN")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                batch = []
    if batch:
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    db.unlink(missing_ok=True)
    return seconds


def stanch_ingest(case: Path, path: Path, fmt: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tui.cli", "--analyst", "bench", "ingest", str(case), str(path), "--json"]
    if fmt:
        cmd += ["--format", fmt]
    seconds, peak, peak_main, out = run_tree(cmd)
    doc = json.loads(out)
    return {"seconds": seconds, "peak_rss_mib": peak / 1024, "peak_main_rss_mib": peak_main / 1024,
            "added": doc["totals"]["events_added"], "seen": doc["totals"]["events_seen"],
            "already": any(f["already_ingested"] for f in doc["files"])}


def new_case(path: Path) -> Path:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "tui.cli", "new", str(path)], check=True, cwd=ROOT, capture_output=True)
    return path


def compare(name: str, path: Path, workdir: Path, target_ratio: float | None) -> dict[str, Any]:
    with open(path, "rb") as fh:
        n = sum(1 for _ in fh)
    mb = path.stat().st_size / 1e6
    su = baseline_sqlite_utils(path, workdir)
    floor = baseline_floor(path, workdir)
    case = new_case(workdir / f"{name}.stanch")
    run = stanch_ingest(case, path)
    again = stanch_ingest(case, path)
    row = {
        "name": name, "events": n, "mb": mb, "stanch_s": run["seconds"], "stanch_eps": n / run["seconds"],
        "stanch_mbps": mb / run["seconds"], "sqlite_utils_s": su, "sqlite_utils_eps": n / su,
        "floor_s": floor, "floor_eps": n / floor, "ratio_sqlite_utils": su / run["seconds"],
        "ratio_floor": floor / run["seconds"], "peak_rss_mib": run["peak_rss_mib"],
        "peak_main_rss_mib": run["peak_main_rss_mib"], "added": run["added"],
        "reingest_s": again["seconds"], "reingest_skipped": again["already"] and again["added"] == 0,
        "target_ratio": target_ratio,
    }
    for p in (case, Path(f"{case}-wal"), Path(f"{case}-shm")):
        p.unlink(missing_ok=True)
    return row


def append(base: Path, extra: Path, workdir: Path) -> dict[str, Any]:
    case = new_case(workdir / "append.stanch")
    b = stanch_ingest(case, base)
    a = stanch_ingest(case, extra)
    n = a["seen"]
    for p in (case, Path(f"{case}-wal"), Path(f"{case}-shm")):
        p.unlink(missing_ok=True)
    return {"base_events": b["added"], "base_s": b["seconds"], "appended": a["added"], "append_s": a["seconds"],
            "append_eps": n / a["seconds"], "peak_rss_mib": max(a["peak_rss_mib"], b["peak_rss_mib"])}


HEAVY_FP = "00c0ffee00c0ffee"  # the sha256/16 key of the benchmark's heavy token (no real token has it)


def heavy_token_file(source: Path, n: int, workdir: Path) -> Path:
    """`n` gateway requests (the source file's first `n`, new request ids) all made with one token: a seed with
    `n` events of its own, the blast radius's worst case."""
    out = workdir / f"heavy-{n}.jsonl"
    if out.exists():
        return out
    part = out.with_suffix(".part")
    with open(source, "rb") as src, open(part, "wb") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            rec = json.loads(line)
            rec["token_fp"], rec["token_tail"], rec["request_id"] = HEAVY_FP, "HVY1", f"heavy{i:026d}"
            dst.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    part.rename(out)
    return out


def analysis(n: int, heavy: int, workdir: Path, repeats: int = 7) -> dict[str, Any]:
    """Blast radius latency on an `n`-event case (with one token holding `heavy` events) and a full findings
    run, each beside its floor measured in the same run: the bare SQL group-by of the seed's events."""
    import statistics
    import time as _time

    import connectors  # noqa: F401  (revokers, object readers, vendor rules)
    from casefile.blast import blast
    from casefile.case import open_case

    source = make_input("gateway", n, workdir)
    case = workdir / f"analysis-{n}.stanch"
    if not case.exists() or not (workdir / f"analysis-{n}.done").exists():
        new_case(case)
        stanch_ingest(case, source)
        stanch_ingest(case, heavy_token_file(source, heavy, workdir))
        (workdir / f"analysis-{n}.done").write_text("ok")
    with open_case(case) as c:
        events = c.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        heavy_id = c.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?",
                                  (f"sha256/16:{HEAVY_FP}",)).fetchone()[0]
        heavy_events = c.conn.execute("SELECT count(*) FROM events WHERE credential_id = ?", (heavy_id,)).fetchone()[0]
        busy = [r[0] for r in c.conn.execute(
            "SELECT credential_id FROM events WHERE credential_id IS NOT NULL AND credential_id != ? GROUP BY 1"
            " ORDER BY count(*) DESC LIMIT 5", (heavy_id,))]

        def timed(fn: Any) -> list[float]:
            out = []
            for _ in range(repeats):
                t = _time.perf_counter()
                fn()
                out.append((_time.perf_counter() - t) * 1000)
            return out

        heavy_ms = timed(lambda: blast(c, str(heavy_id), as_of="2025-08-19T00:00:00Z"))
        busy_ms = [statistics.median(timed(lambda cid=cid: blast(c, str(cid)))) for cid in busy]
        floor_ms = timed(lambda: c.conn.execute(
            "SELECT resource, count(*) FROM events WHERE credential_id = ? GROUP BY resource", (heavy_id,)).fetchall())
    seconds, peak, _, out = run_tree([sys.executable, "-m", "tui.cli", "--analyst", "bench", "findings", str(case),
                                      "--json"])
    doc = json.loads(out)
    return {"events": events, "heavy_events": heavy_events, "blast_heavy_p50_ms": statistics.median(heavy_ms),
            "blast_heavy_max_ms": max(heavy_ms), "blast_busy_p50_ms": statistics.median(busy_ms),
            "floor_p50_ms": statistics.median(floor_ms), "findings_s": seconds, "findings_peak_rss_mib": peak / 1024,
            "findings": len(doc["findings"]), "rules": doc["rules"]}


def report(machine: dict[str, str], rows: list[dict[str, Any]], app: dict[str, Any] | None, argv: list[str],
           families: list[dict[str, Any]] | None = None, ana: dict[str, Any] | None = None) -> str:
    lines = ["# stanch benchmarks", "",
             f"Command: `python -m benchmarks {' '.join(argv)}` (written by the harness; do not edit by hand).", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), "",
             "Baselines are measured on the same file in the same run: `sqlite-utils insert --nl` and a bare "
             "orjson + `executemany` floor into an index-free table. stanch's figure includes parsing the vendor "
             "format, normalisation, redaction, stable ids, credential identity, the audit chain, every index "
             "the queries use and the full-text index.", "",
             "| input | events | MB | stanch s | events/s | MB/s | sqlite-utils events/s | floor events/s | "
             "× sqlite-utils | × floor | peak RSS (tree / main) MiB | re-ingest s | target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        target = f"≥ {r['target_ratio']}× sqlite-utils" if r["target_ratio"] else "≥ 25 MB/s"
        met = (r["ratio_sqlite_utils"] >= r["target_ratio"]) if r["target_ratio"] else r["stanch_mbps"] >= 25
        lines.append(
            f"| {r['name']} | {r['events']:,} | {r['mb']:.0f} | {r['stanch_s']:.1f} | {r['stanch_eps']:,.0f} | "
            f"{r['stanch_mbps']:.1f} | {r['sqlite_utils_eps']:,.0f} | {r['floor_eps']:,.0f} | "
            f"{r['ratio_sqlite_utils']:.2f} | {r['ratio_floor']:.2f} | {r['peak_rss_mib']:.0f} / "
            f"{r['peak_main_rss_mib']:.0f} | {r['reingest_s']:.2f}{'' if r['reingest_skipped'] else ' (NOT skipped)'} | "
            f"{target}: {'met' if met else 'not met'} |")
    if app:
        lines += ["", f"Append: {app['appended']:,} events into a case holding {app['base_events']:,}: "
                  f"{app['append_s']:.1f} s, **{app['append_eps']:,.0f} events/s** (target ≥ 40,000: "
                  f"{'met' if app['append_eps'] >= 40_000 else 'not met'}); building the base took "
                  f"{app['base_s']:.1f} s; peak RSS {app['peak_rss_mib']:.0f} MiB (target < 300: "
                  f"{'met' if app['peak_rss_mib'] < 300 else 'not met'})."]
    if families:
        lines += ["", "Per format family (inputs grown from committed fixtures; see `make_family_input`):", "",
                  "| family | format | events | MB | s | events/s | MB/s | baseline | baseline events/s | × baseline |"
                  " peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        for f in families:
            lines.append(f"| {f['family']} | {f['format']} | {f['events']:,} | {f['mb']:.0f} | {f['stanch_s']:.1f} | "
                         f"{f['stanch_eps']:,.0f} | {f['stanch_mbps']:.1f} | {f['baseline']} | "
                         f"{f['baseline_eps']:,.0f} | {f['ratio']:.2f} | {f['peak_rss_mib']:.0f} |")
    if ana:
        lines += ["", f"Analysis on a case of {ana['events']:,} events (one token holding {ana['heavy_events']:,} of "
                  "them; floor: the bare SQL group-by of that token's events by resource, same run):", "",
                  "| measure | stanch | floor | target |", "|---|---:|---:|---|",
                  f"| blast radius, heavy token, p50 of 7 | {ana['blast_heavy_p50_ms']:.0f} ms (max "
                  f"{ana['blast_heavy_max_ms']:.0f}) | {ana['floor_p50_ms']:.0f} ms | p50 < 300 ms: "
                  f"{'met' if ana['blast_heavy_p50_ms'] < 300 else 'not met'} |",
                  f"| blast radius, the 5 busiest other credentials, p50 | {ana['blast_busy_p50_ms']:.0f} ms | | |",
                  f"| all findings ({ana['rules']} rules, {ana['findings']} findings), whole command | "
                  f"{ana['findings_s']:.1f} s (peak RSS {ana['findings_peak_rss_mib']:.0f} MiB) | | < 60 s: "
                  f"{'met' if ana['findings_s'] < 60 else 'not met'} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway", type=int, nargs="+", default=[1_000_000], help="gateway (nginx JSON) sizes")
    p.add_argument("--okta", type=int, default=1_000_000, help="Okta System Log events")
    p.add_argument("--append-base", type=int, default=0, help="events already in the case before the append run")
    p.add_argument("--append", type=int, default=0, help="events appended to that case")
    p.add_argument("--families", type=int, default=0,
                   help="also measure the text and CSV families at this many events (JSON lines: the runs above)")
    p.add_argument("--analysis", type=int, default=0,
                   help="also measure the blast radius and a findings run on a case of this many gateway events")
    p.add_argument("--heavy", type=int, default=100_000, help="events of the analysis case's heaviest token")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stanch-bench")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the report (default benchmarks/RESULTS.md; an analysis-only run writes "
                        "benchmarks/RESULTS-analysis.md so the ingest figures are kept)")
    p.add_argument("--revocations", type=int, default=0,
                   help="also measure the playbook engine revoking this many Vault tokens through a 50 ms proxy, "
                        "against a sequential loop (benchmarks/playbooks.py; the full run is 10000)")
    p.add_argument("--console", action="store_true",
                   help="also time the console: open to first paint and timeline filter keystrokes "
                        "(benchmarks/console.py) on the --analysis case, written beside the report as "
                        "RESULTS-console.md")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI): proves the harness runs")
    p.add_argument("--all", action="store_true",
                   help="every benchmark at its full size (ingest 1M and 10M, Okta 1M, append 1M onto 10M, the text "
                        "and CSV families at 1M, analysis and console on 10M events, 10,000 revocations), all in "
                        "one rewritten benchmarks/RESULTS.md; several hours on 2 cores; needs ~60 GB in --workdir")
    args = p.parse_args(argv)
    if args.all:
        args.gateway, args.okta, args.append_base, args.append = [1_000_000, 10_000_000], 1_000_000, 10_000_000, 1_000_000
        args.families, args.analysis, args.revocations, args.console = 1_000_000, 10_000_000, 10_000, True
    if args.smoke:
        args.gateway, args.okta, args.append_base, args.append = [20_000], 5_000, 20_000, 5_000
        args.families = 5_000
        args.analysis, args.heavy = 20_000, 2_000
        args.revocations = 200
        args.console = True
    args.workdir.mkdir(parents=True, exist_ok=True)
    machine = describe()
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine.items()), flush=True)
    rows = []
    runs = [("gateway", n, 2.0) for n in args.gateway] + [("okta", args.okta, None)]
    for kind, n, target in runs:
        if n <= 0:
            continue
        path = make_input(kind, n, args.workdir)
        row = compare(f"{kind} (nginx JSON)" if kind == "gateway" else "okta (System Log JSON)", path,
                      args.workdir, target)
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    app = None
    if args.append > 0 and args.append_base > 0:
        whole = make_input("gateway", args.append_base + args.append, args.workdir)
        base, extra = split(whole, args.append_base, args.workdir)
        app = append(base, extra, args.workdir)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in app.items()}), flush=True)
    fams = []
    for name in ("text", "csv", "cloudtrail") if args.families > 0 else ():
        try:
            fams.append(family(name, args.families, args.workdir))
        except SystemExit as e:  # a family whose fixture or parser is missing is reported, not fatal
            print(f"family {name}: {e}", flush=True)
            continue
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in fams[-1].items()}), flush=True)
    ana = analysis(args.analysis, args.heavy, args.workdir) if args.analysis > 0 else None
    if ana:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in ana.items()}), flush=True)
    rev = None
    if args.revocations > 0:
        from benchmarks import playbooks

        rev = playbooks.run(args.revocations, args.workdir, sample=min(200, max(50, args.revocations // 4)))
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rev.items()}), flush=True)
    if args.console:
        from benchmarks import console

        out_dir = (args.out.parent if args.out is not None else ROOT / "benchmarks")
        case_args = (["--case", str(args.workdir / f"analysis-{args.analysis}.stanch")] if args.analysis > 0 else
                     ["--events", "200000"])
        console.main([*case_args, "--workdir", str(args.workdir), "--runs", "1" if args.smoke else "3",
                      "--out", str(out_dir / "RESULTS-console.md")])
    text = report(machine, rows, app, argv, fams, ana)
    if rev:
        text += "\n".join(playbooks.section(rev)) + "\n"
    if args.console:  # the console's figures in the same report, too (its own file keeps the per-key detail)
        console_md = (out_dir / "RESULTS-console.md").read_text()
        text += "\n" + console_md.replace("\n## ", "\n### ").replace("# stanch console benchmark", "## Console", 1)
    if args.out is None:
        only_analysis = not rows and app is None and not fams and ana is not None
        args.out = ROOT / "benchmarks" / ("RESULTS-analysis.md" if only_analysis else "RESULTS.md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
