"""Prism 5.14.2 (tests/peers/prism, test-peers.md §3) serving a vendor's OpenAPI document, as a test peer.

`start_prism(spec_path)` runs `node_modules/.bin/prism mock -h 127.0.0.1 -p PORT SPEC` directly (not through
npx, whose grandchild node process would outlive a kill of the npx pid), waits until the port answers HTTP,
and returns `PrismPeer(url, pid)`; `stop_prism(peer)` stops it by that pid. Locally a missing `node` or a
missing Prism install skips the test; under CI=true it fails (tests/peers.py `need`). Usable for any
vendor's spec (Okta now; Kong, Keycloak later): one Prism per spec, module-scoped.

**How Prism 5.14 signals a contract violation** (tried here; this is what the tests assert on):

- In `mock` mode Prism always validates the request (path, query, headers, body, security). An invalid
  request is answered with the spec's own 400 response when the operation declares one (Okta's
  `GET /api/v1/logs` does, with the example body `E0000001 Api validation failed`), else with 422
  `https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY`; a missing credential gets 401 `#UNAUTHORIZED`.
- The violations are listed: in the 422 problem body's `validation` list (locations like
  `["query", "limit"]`, all about the request), or, on an answer built from the spec (its 400, or a success), in the `sl-violations`
  header (JSON; `location[0]` is `request` or `response`). `request_violations(response)` reads both; `RecordingTransport.assert_contract_kept`
  asserts that no request had a violation or a Prism rejection (401/422 `stoplight.io/prism/errors#…`).
- `--errors` additionally turns **response** violations into a 500 `#VIOLATIONS`. Okta's own examples break
  Okta's own schemas (nulls in non-nullable strings, `tokenWindow: P30D` failing the spec's `TimeDuration`
  pattern `^P(?:$)…`), so with `--errors` half the Okta operations answer 500 whatever the request. So
  `errors` defaults to False: request validation, the point of the peer, is on either way.

Useful request header: `Prefer: code=404` makes Prism answer with the operation's 404 example.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers import free_port, need, need_binary

PEER_DIR = Path(__file__).resolve().parents[1] / "peers" / "prism"
PRISM = PEER_DIR / "node_modules" / ".bin" / "prism"
NPM_INSTALL = "cd tests/peers/prism && npm ci --no-audit --no-fund"
PRISM_VERSION = "5.14.2"


@dataclass
class PrismPeer:
    url: str  # http://127.0.0.1:PORT, the spec's paths served from the root
    pid: int
    spec: Path
    log: Path  # Prism's own log (its [VALIDATOR] lines)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def start_prism(spec_path: str | os.PathLike[str], *, log_dir: Path | None = None, errors: bool = False,
                timeout_s: float = 30.0) -> PrismPeer:
    """Start `prism mock` on a free 127.0.0.1 port for `spec_path`; return once it answers HTTP."""
    node = need_binary("node", "apt-get install nodejs npm")
    need(PRISM.exists(), f"Prism {PRISM_VERSION} (tests/peers/prism/node_modules)", NPM_INSTALL)
    spec = Path(spec_path).resolve()
    if not spec.is_file():
        pytest.fail(f"no OpenAPI document at {spec}")
    port = free_port()
    log = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"prism-{port}.log"
    args = [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)]
    if errors:
        args.append("--errors")
    env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=PEER_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    peer = PrismPeer(url, proc.pid, spec, log, proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(f"{url}/", timeout=1)  # any HTTP answer (404 for an unknown route) means it is up
            return peer
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_prism(peer)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"Prism did not answer at {url} for {spec.name} (exit code {proc.poll()}):\n{tail}")


def stop_prism(peer: PrismPeer) -> None:
    """Stop Prism by its pid (SIGTERM, then SIGKILL after 5 s)."""
    proc = peer.proc
    if proc is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(peer.pid, signal.SIGTERM)
        return
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# One violation object as Prism writes it in `sl-violations`.
_VIOLATION = re.compile(r'\{"location":\[[^\]]*\],"severity":"[^"]*","code":"?[^",]*"?,"message":"(?:[^"\\]|\\.)*"\}')


def violations(response: httpx.Response) -> list[dict[str, Any]]:
    """The violations Prism reported for this exchange: the `sl-violations` header (request and response
    violations, on answers built from the spec) plus the `validation` list of Prism's own 422 problem body."""
    found: list[Any] = []
    raw = response.headers.get("sl-violations")
    if raw and raw.startswith("["):
        found.extend(json.loads(raw))
    elif raw:  # "Too many violations! [...]" (cut short): read the whole violation objects it still holds
        found.extend(json.loads(m.group(0)) for m in _VIOLATION.finditer(raw))
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("validation"), list):
            # Prism's own 422 is about the request; its locations leave out the `request` prefix
            found.extend({**v, "location": ["request", *v.get("location", [])]}
                         for v in body["validation"] if isinstance(v, dict))
    return [v for v in found if isinstance(v, dict)]


def request_violations(response: httpx.Response) -> list[str]:
    """`location: message` of each violation of the *request* (what the vendor's contract would reject)."""
    return [f"{'.'.join(str(p) for p in v.get('location', []))}: {v.get('message')}"
            for v in violations(response) if (v.get("location") or [None])[0] == "request"]


def is_prism_rejection(response: httpx.Response) -> bool:
    """Prism refused the request as invalid: 422 / 401 from Prism itself, or a request violation listed."""
    kind = ""
    if response.headers.get("content-type", "").startswith(("application/problem+json", "application/json")):
        try:
            body = response.json()
        except ValueError:
            body = None
        kind = str(body.get("type", "")) if isinstance(body, dict) else ""
    return bool(request_violations(response)) or kind.startswith("https://stoplight.io/prism/errors#")


class RecordingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends for real and keeps every response, so a test can read Prism's verdict
    (`sl-violations`) on requests a connector function made through its own `ConnectorClient`."""

    def __init__(self, prefer: dict[str, str] | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[httpx.Response] = []
        self.prefer = dict(prefer or {})  # path substring -> Prism `Prefer` value (`code=404`)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for fragment, value in self.prefer.items():
            if fragment in request.url.path:
                request.headers["Prefer"] = value
                break
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def calls(self) -> list[tuple[str, str, int]]:
        return [(r.request.method, r.request.url.path, r.status_code) for r in self.exchanges]

    def assert_contract_kept(self) -> None:
        """Every request passed Prism's validation (no request violation, no Prism rejection)."""
        bad = [(r.request.method, str(r.request.url), r.status_code, request_violations(r) or r.text[:300])
               for r in self.exchanges if is_prism_rejection(r)]
        assert not bad, f"requests the vendor's contract rejects: {bad}"


@pytest.fixture(scope="module")
def prism_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`prism_factory(spec_path) -> PrismPeer`; every peer started is stopped at the end of the module."""
    started: list[PrismPeer] = []

    def start(spec_path: str | os.PathLike[str], **kw: Any) -> PrismPeer:
        peer = start_prism(spec_path, log_dir=tmp_path_factory.mktemp("prism"), **kw)
        started.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in started:
            stop_prism(peer)
