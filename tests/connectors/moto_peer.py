"""A moto server (moto 5.2.5, a widely used AWS API emulator, server mode) as a peer for the aws connector.

`moto_server` runs as a subprocess on a free 127.0.0.1 port and is stopped by its pid. It is started with
`INITIAL_NO_AUTH_ACTION_COUNT=3`: moto accepts the first three AWS calls unsigned, then checks every SigV4
signature against the keys it knows and the caller's IAM policies, so an unknown or deleted key is refused
with 403 `InvalidClientTokenId` as on AWS. The three free calls bootstrap an admin user with an allow-all inline
policy and one access key; every later call is signed with that key (or with the key under test).

moto facts this relies on (checked against moto 5.2.5 when this peer was written):

- all services share the one endpoint; the account is 123456789012;
- an **Inactive** key still authenticates (moto's auth never reads the key's `Status`); only deleted and
  unknown keys are refused;
- CloudTrail `LookupEvents` is not implemented (HTTP 500, `NotImplementedError` in the server log).

Locally the tests skip when `moto_server` is missing (`pip install "moto[server]==5.2.5"`); under CI=true they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connectors import aws
from connectors.config import ConnectorSettings
from tests.peers import free_port, need

ACCOUNT = "123456789012"
FREE_ACTIONS = 3
# Fake, valid-shaped bootstrap credentials: moto does not check the first FREE_ACTIONS calls.
BOOT = aws.AwsCredentials("AKIAEXAMPLEBOOT00000", "exampleBootSecretKey0000000000000000000000")
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def moto_binary() -> str | None:
    """`moto_server` beside this Python (the project venv), else on PATH."""
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server")


def need_moto() -> str:
    binary = moto_binary()
    need(binary is not None, "moto server `moto_server`", 'pip install "moto[server]==5.2.5"')
    assert binary is not None
    return binary


@dataclass
class Moto:
    base: str  # http://127.0.0.1:PORT
    admin: aws.AwsCredentials
    log: Path

    def settings(self, name: str = "moto-test") -> ConnectorSettings:
        return ConnectorSettings(name=name, kind="aws", url=self.base)

    def session(self, creds: aws.AwsCredentials | None = None, **options: Any) -> aws.AwsSession:
        return aws.AwsSession(self.settings(), creds or self.admin, **options)

    def secret(self) -> str:
        """The admin credential as a connector secret (`AKIA…:<secret>`)."""
        return f"{self.admin.access_key_id}:{self.admin.secret_access_key}"

    def create_user(self, name: str) -> None:
        asyncio.run(_query(self, self.admin, "CreateUser", {"UserName": name}))

    def create_key(self, user: str) -> aws.AwsCredentials:
        return asyncio.run(_create_key(self, self.admin, user))


async def _query(m: Moto | str, creds: aws.AwsCredentials, action: str, params: dict[str, str]) -> None:
    base = m.base if isinstance(m, Moto) else m
    async with aws.AwsSession(ConnectorSettings(name="moto-boot", kind="aws", url=base), creds) as s:
        await s.query("iam", action, params, idempotent=False)


async def _create_key(m: Moto | str, creds: aws.AwsCredentials, user: str) -> aws.AwsCredentials:
    base = m.base if isinstance(m, Moto) else m
    async with aws.AwsSession(ConnectorSettings(name="moto-boot", kind="aws", url=base), creds) as s:
        result = await s.query("iam", "CreateAccessKey", {"UserName": user}, idempotent=False)
    key = result.find("AccessKey")
    key_id, secret = aws._text(key, "AccessKeyId"), aws._text(key, "SecretAccessKey")
    assert key_id and secret, "moto's CreateAccessKey answered no key"
    return aws.AwsCredentials(key_id, secret)


def _bootstrap(base: str) -> aws.AwsCredentials:
    """The FREE_ACTIONS unchecked calls: an admin user, its allow-all policy, its access key."""

    async def go() -> aws.AwsCredentials:
        await _query(base, BOOT, "CreateUser", {"UserName": "stanch-admin"})
        await _query(base, BOOT, "PutUserPolicy", {"UserName": "stanch-admin", "PolicyName": "all",
                                                   "PolicyDocument": ALLOW_ALL})
        return await _create_key(base, BOOT, "stanch-admin")

    return asyncio.run(go())


@contextmanager
def moto_server(workdir: Path) -> Iterator[Moto]:
    """A moto server with signature checks on, bootstrapped with an admin key; stopped by pid on exit."""
    binary = need_moto()
    port = free_port()
    log = workdir / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(FREE_ACTIONS), "MOTO_ACCOUNT_ID": ACCOUNT}
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer on {base} within 30 s")
            time.sleep(0.05)
        yield Moto(base, _bootstrap(base), log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
