"""A fault-injecting HTTP/1.1 proxy (plain or TLS front) for network-fault tests against a real peer.

It forwards each request to one upstream (a real OpenBao in the tests) on a keep-alive connection, unless a
rule says otherwise for that request. A rule matches by method, path and body substring and picks a fault:

- by count: a `script`, the n-th matching request getting the n-th entry (None lets it through), after
  `skip` matching requests pass untouched;
- by probability: `rate` with `choices`, decided per request from `random.Random(f"{seed}|{key}")`, where the
  key is the request's label (see `label`) and how many times that label was seen before. The decision
  depends on the seed and the label only, never on how concurrent requests interleave, so a fixed seed gives
  the same faults on every run.

Faults (`Fault`): an HTTP status answered by the proxy (429 with `Retry-After`, 500/502/503), a response
held longer than the client's read timeout, a TCP reset after half the response, a close before any byte.
`forwarded=True` sends the request upstream first, so its effect happened and only the answer is lost (the
ambiguous case a revocation must survive); otherwise upstream never sees it.

With `tls=` (a server `ssl.SSLContext`) the proxy terminates TLS with that certificate (self-signed, wrong
host, expired: whatever the test made) and forwards plain HTTP. Every TLS handshake and its outcome is kept.

It records every request (`Record`: times, label, fault, whether and what upstream answered), how many were
in flight at once (from the request head to the last response byte, or until the client hung up), and which
handshakes failed. Run it in-process (`with proxy.running() as url:`, its own event loop in a thread) or as a
process: `python tests/peers/faultproxy.py --upstream 127.0.0.1:8200 --port 9000 --rate 0.2 --seed 7
--log requests.jsonl` (prints `listening URL`, stops on SIGTERM).

Standard library only, so the file runs as a script and is loaded by path (`tests/peers.py` is a module, so
`tests/peers/` is not a package).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


# ------------------------------------------------------------------------------------------------ faults


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one request instead of (or after) forwarding it."""

    kind: str  # "status" | "slow" | "reset" | "close"
    status: int = 503
    retry_after: str | None = None  # the Retry-After header of a status answer
    seconds: float = 0.0  # how long a slow answer is held
    forwarded: bool = False  # the request reaches upstream first (its effect happens; the answer is lost)

    @property
    def name(self) -> str:
        what = {"status": str(self.status), "slow": f"slow {self.seconds:g}s"}.get(self.kind, self.kind)
        return f"{what} after upstream" if self.forwarded else what


def status(code: int, *, retry_after: str | float | None = None, forwarded: bool = False) -> Fault:
    """An HTTP error answered by the proxy (upstream never sees the request unless `forwarded`)."""
    after = None if retry_after is None else (f"{retry_after:g}" if isinstance(retry_after, float | int)
                                              else str(retry_after))
    return Fault("status", status=code, retry_after=after, forwarded=forwarded)


def too_many(retry_after: str | float) -> Fault:
    """429 with `Retry-After` (seconds, or an HTTP date)."""
    return status(429, retry_after=retry_after)


def slow(seconds: float, *, forwarded: bool = True) -> Fault:
    """Hold the answer `seconds` (longer than the client's read timeout). Forwarded: upstream acts at once and
    only the answer is late. Not forwarded: the request is held, and dropped if the client hangs up first."""
    return Fault("slow", seconds=seconds, forwarded=forwarded)


def reset(*, forwarded: bool = True) -> Fault:
    """A TCP reset: after half of upstream's answer when forwarded, else before any byte."""
    return Fault("reset", forwarded=forwarded)


def close(*, forwarded: bool = False) -> Fault:
    """Close the connection (FIN) before any byte of the answer."""
    return Fault("close", forwarded=forwarded)


#: One of every kind, for probability rules.
EVERY_KIND: tuple[Fault, ...] = (
    too_many(1), status(500), status(502, forwarded=True), status(503), slow(3.0), slow(3.0, forwarded=False),
    reset(), reset(forwarded=False), close(), close(forwarded=True),
)


@dataclass
class Rule:
    """Which requests get which fault. Empty `method`/`path`/`body` match anything; `path` is a regex searched
    in the request target, `body` a substring of the request body. The first rule that matches a request
    decides for it (a spent script lets it through)."""

    method: str | None = None
    path: str | None = None
    body: str | None = None
    script: Sequence[Fault | None] = ()
    skip: int = 0
    rate: float = 0.0
    choices: Sequence[Fault] = EVERY_KIND
    seen: int = 0

    def matches(self, method: str, target: str, body: bytes) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, target) is not None)
                and (self.body is None or self.body.encode() in body))


# ------------------------------------------------------------------------------------------------ records


@dataclass
class Record:
    """One request as the proxy handled it. Times are `time.time()` (wall) and `time.monotonic()` seconds."""

    conn: int
    method: str
    path: str
    label: str
    received: float  # wall time the request head was read
    received_mono: float
    fault: str | None = None
    retry_after: str | None = None  # the Retry-After the proxy answered with
    forwarded: bool = False  # the request reached upstream
    upstream_status: int | None = None
    sending: float | None = None  # wall time just before the first byte of the answer was written
    answered: float | None = None  # wall time the proxy's answer (or fault) was complete
    client_gone: bool = False  # the client hung up while the answer was held
    in_flight: int = 0  # requests in flight at the proxy when this one arrived (itself included)


@dataclass
class Handshake:
    conn: int
    at: float
    ok: bool
    error: str = ""


@dataclass
class _Stats:
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0


# ------------------------------------------------------------------------------------------------ HTTP bits


async def read_message(reader: asyncio.StreamReader, *, response_to: str | None = None) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message as (head, body); None at EOF. Bodies by Content-Length, chunked, or (responses)
    to close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
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
    elif response_to is not None:
        code = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
        if response_to != "HEAD" and not code.startswith("1") and code not in ("204", "304"):
            body = await reader.read()
    return head, body


def answer(code: int, retry_after: str | None = None) -> bytes:
    body = json.dumps({"errors": [f"injected by faultproxy: {code}"]}).encode()
    extra = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
    return (f"HTTP/1.1 {code} {REASONS.get(code, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _status_of(head: bytes) -> int | None:
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def default_label(method: str, target: str, body: bytes) -> str:
    """`METHOD path` plus, for a JSON body with an `accessor` or `input`, that value."""
    label = f"{method} {target.split('?')[0]}"
    if body[:1] == b"{":
        try:
            doc = json.loads(body)
        except ValueError:
            return label
        if isinstance(doc, dict):
            for key in ("accessor", "input"):
                if isinstance(doc.get(key), str):
                    return f"{label} {doc[key]}"
    return label


# ------------------------------------------------------------------------------------------------ the proxy


class FaultProxy:
    """See the module docstring. `label(method, target, body) -> str` names a request for probability
    decisions and the log (default: `default_label`); tests map ids that change per run (accessors) to stable
    names there, so a seed gives the same faults on every run."""

    def __init__(self, upstream: tuple[str, int], *, rules: Sequence[Rule] = (), seed: int = 0,
                 tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0,
                 label: Callable[[str, str, bytes], str] = default_label,
                 log: Callable[[Record], None] | None = None) -> None:
        self.upstream, self.rules, self.seed, self.tls = upstream, list(rules), seed, tls
        self.host, self.port = host, port
        self.label = label
        self.records: list[Record] = []
        self.handshakes: list[Handshake] = []
        self.stats = _Stats()
        self._on_record = log
        self._label_seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ the script

    def set_rules(self, *rules: Rule) -> None:
        """Replace the rules (between phases of a test)."""
        with self._lock:
            self.rules = list(rules)

    def _choose(self, method: str, target: str, body: bytes, label: str) -> Fault | None:
        with self._lock:
            occurrence = self._label_seen[label]
            self._label_seen[label] += 1
            for index, rule in enumerate(self.rules):
                if not rule.matches(method, target, body):
                    continue
                n = rule.seen
                rule.seen += 1
                if rule.script:
                    if n < rule.skip:
                        return None
                    i = n - rule.skip
                    return rule.script[i] if i < len(rule.script) else None
                if rule.rate > 0 and n >= rule.skip:
                    rng = random.Random(f"{self.seed}|{index}|{label}|{occurrence}")
                    if rng.random() < rule.rate:
                        return rng.choice(list(rule.choices))
                return None
        return None

    # ------------------------------------------------------------------ serving

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve from a thread with its own event loop; yields the proxy's base URL; stops on exit."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # reported to the caller below
                failure.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, name="faultproxy", daemon=True)
        thread.start()
        started.wait(30)
        if failure:
            raise RuntimeError(f"faultproxy did not start: {failure[0]}")
        self._loop = loop
        try:
            yield self.url
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self.stats.connections += 1
            conn = self.stats.connections
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.tls is not None:
                try:
                    await writer.start_tls(self.tls)
                except (ssl.SSLError, ConnectionError, OSError) as e:
                    self.handshakes.append(Handshake(conn, time.time(), False, f"{type(e).__name__}: {e}"))
                    return
                self.handshakes.append(Handshake(conn, time.time(), True))
            while True:
                message = await read_message(reader)
                if message is None:
                    return
                up, keep = await self._one(conn, message, reader, writer, up)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, ValueError):
            return
        except asyncio.CancelledError:  # the proxy is stopping: end quietly (asyncio reports a cancelled handler)
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            for w in (up[1] if up else None, writer):
                if w is not None and not w.is_closing():
                    w.close()

    async def _forward(self, head: bytes, body: bytes, method: str,
                       up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
                       ) -> tuple[tuple[bytes, bytes] | None, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        for _ in range(2):  # once more on a fresh connection if upstream closed the kept-alive one
            if up is None:
                up = await asyncio.open_connection(*self.upstream)
            try:
                up[1].write(head + body)
                await up[1].drain()
                response = await read_message(up[0], response_to=method)
            except (ConnectionError, OSError):
                response = None
            if response is not None:
                return response, up
            up[1].close()
            up = None
        return None, up

    async def _one(self, conn: int, message: tuple[bytes, bytes], reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
                   ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, bool]:
        head, body = message
        method, target = head.split(b" ", 2)[:2]
        m, t = method.decode("latin-1"), target.decode("latin-1")
        label = self.label(m, t, body)
        fault = self._choose(m, t, body, label)
        with self._lock:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            rec = Record(conn, m, t, label, time.time(), time.monotonic(), fault.name if fault else None,
                         fault.retry_after if fault else None, in_flight=self.stats.in_flight)
        keep = True
        try:
            response: tuple[bytes, bytes] | None = None
            if fault is None or fault.forwarded:
                response, up = await self._forward(head, body, m, up)
                if response is None:
                    return up, False
                rec.forwarded, rec.upstream_status = True, _status_of(response[0])
            if fault is None:
                assert response is not None
                rec.sending = time.time()
                writer.write(response[0] + response[1])
                await writer.drain()
            elif fault.kind == "status":
                rec.sending = time.time()  # a Retry-After counts from no earlier than this
                writer.write(answer(fault.status, fault.retry_after))
                await writer.drain()
            elif fault.kind == "slow":
                if await self._client_left_within(reader, fault.seconds):
                    rec.client_gone = True
                    return up, False
                if response is None:  # held, not forwarded: the client waited it out, so send it now
                    response, up = await self._forward(head, body, m, up)
                    if response is None:
                        return up, False
                    rec.forwarded, rec.upstream_status = True, _status_of(response[0])
                rec.sending = time.time()
                writer.write(response[0] + response[1])
                await writer.drain()
            elif fault.kind == "reset":
                if response is not None:
                    whole = response[0] + response[1]
                    rec.sending = time.time()
                    writer.write(whole[:max(1, len(whole) // 2)])
                    await writer.drain()
                    await asyncio.sleep(0.05)  # let the half reach the client before the RST
                _abort(writer)
                keep = False
            elif fault.kind == "close":
                keep = False
            return up, keep
        finally:
            rec.answered = time.time()
            with self._lock:
                self.stats.in_flight -= 1
                self.records.append(rec)
            if self._on_record is not None:
                self._on_record(rec)

    @staticmethod
    async def _client_left_within(reader: asyncio.StreamReader, seconds: float) -> bool:
        """Wait `seconds`; True the moment the client hangs up (so it no longer counts as in flight when its retry
        arrives). An HTTP/1.1 client sends nothing while it waits for an answer; one that does (pipelining) is
        not supported and is treated as gone too."""
        try:
            await asyncio.wait_for(reader.read(1), seconds)
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        return True

    # ------------------------------------------------------------------ reading the log

    def requests(self, path: str | None = None, *, method: str | None = None) -> list[Record]:
        """Records whose path contains `path` (and whose method is `method`), in arrival order."""
        with self._lock:
            rows = list(self.records)
        rows.sort(key=lambda r: r.received_mono)
        return [r for r in rows if (path is None or path in r.path) and (method is None or r.method == method)]

    def settled(self, timeout: float = 5.0) -> FaultProxy:
        """Wait until no connection is being handled (a refused handshake is logged when the proxy's side of it
        ends, a moment after the client gave up); returns self."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def faults(self) -> Counter[str]:
        return Counter(r.fault for r in self.requests() if r.fault)


def busiest_second(times: Sequence[float]) -> int:
    """The most events in any window of one second."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# ------------------------------------------------------------------------------------------------ as a process


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A fault-injecting HTTP/1.1 proxy (tests/peers/faultproxy.py).")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.2, help="share of requests that get a fault of some kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--path", default=None, help="regex: only requests whose target matches get faults")
    p.add_argument("--cert", help="TLS front: server certificate (PEM)")
    p.add_argument("--key", help="TLS front: its private key (PEM)")
    p.add_argument("--log", help="append one JSON line per request here")
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    out = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115  (held for the server's life)

    def log(rec: Record) -> None:
        if out is not None:
            out.write(json.dumps(asdict(rec)) + "\n")

    proxy = FaultProxy((host or "127.0.0.1", int(port)), rules=[Rule(path=args.path, rate=args.rate)],
                       seed=args.seed, tls=tls, port=args.port, log=log)

    async def serve() -> None:
        await proxy.start()
        print(f"listening {proxy.url}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await proxy.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EVERY_KIND", "Fault", "FaultProxy", "Handshake", "Record", "Rule", "busiest_second", "close",
           "default_label", "main", "read_message", "reset", "slow", "status", "too_many"]
