"""The oidc-provider test peer (tests/peers/oidc/server.mjs, test-peers.md §1) as a pytest fixture.

`oidc_peer` starts `node server.mjs` on free 127.0.0.1 ports with its working directory (and its events file)
in a temporary folder, waits for the discovery document, and stops the node process by its pid. Locally it
skips when node or the npm packages are missing; under CI=true it fails (tests/peers.py `need`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.peers import free_port, need, need_binary

PEER_DIR = Path(__file__).resolve().parents[1] / "peers" / "oidc"
NPM_INSTALL = "cd tests/peers/oidc && npm ci --no-audit --no-fund"


@dataclass(frozen=True)
class OidcPeer:
    url: str  # the issuer, e.g. http://127.0.0.1:PORT
    seeded_refresh_token: str  # printed by server.mjs at start-up, from a pre-seeded grant for ir-app
    grant_id: str
    events: Path  # the JSON-lines events file server.mjs writes
    pid: int
    tls_url: str = ""  # https://127.0.0.1:TLS_PORT when start_peer wrote tls/server.crt and tls/server.key


def start_peer(workdir: Path, files: Mapping[str, bytes] | None = None) -> tuple[subprocess.Popen[str], OidcPeer]:
    """Start server.mjs in `workdir`. `files` (relative path -> content) are written there first: with
    `tls/server.crt` and `tls/server.key` the peer also serves HTTPS (mTLS) on TLS_PORT (returned as `tls_url`),
    and `mtls-client.jwk.json` registers the client `ir-mtls` (test-peers.md §1)."""
    for name, content in (files or {}).items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    with_tls = (workdir / "tls" / "server.crt").is_file() and (workdir / "tls" / "server.key").is_file()
    node = need_binary("node", "apt-get install nodejs npm")
    need((PEER_DIR / "node_modules" / "oidc-provider").is_dir(), "oidc-provider peer", NPM_INSTALL)
    port, tls_port = free_port(), free_port()
    events = workdir / "events.jsonl"
    env = {**os.environ, "PORT": str(port), "TLS_PORT": str(tls_port), "EVENTS": str(events)}
    proc = subprocess.Popen([node, str(PEER_DIR / "server.mjs")], cwd=workdir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}"
    seeded: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()  # the seeded token line comes before "listening"
        if line.startswith("{") and "seeded_refresh_token" in line:
            seeded = json.loads(line)
        if "listening" in line:
            break
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/.well-known/openid-configuration", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        stop_peer(proc)
        pytest.fail(f"oidc-provider peer did not answer discovery at {url} (exit code {proc.poll()})")
    tls_url = f"https://127.0.0.1:{tls_port}" if with_tls else ""
    while with_tls and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                stop_peer(proc)
                pytest.fail(f"oidc-provider peer did not open its mTLS listener at {tls_url}")
            time.sleep(0.05)
    return proc, OidcPeer(url, seeded.get("seeded_refresh_token", ""), seeded.get("grant_id", ""), events, proc.pid,
                          tls_url)


def stop_peer(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def oidc_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    proc, peer = start_peer(tmp_path_factory.mktemp("oidc-peer"))
    try:
        yield peer
    finally:
        stop_peer(proc)
