"""`haproxy-json`: haproxy JSON access logs (test-peers.md §5b log-format, native sha2(256) token fingerprint)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import connectors.haproxy  # noqa: F401  (registers the format)
from casefile.formats import get
from casefile.records import Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource
from tests.peers import need_binary

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "haproxy"
LOG = FIXTURES / "haproxy-access.jsonl"
# The fake tokens record.py sent (tests/fixtures/haproxy/SOURCES.md).
TOKEN = "stanch-test-FAKE-" + "h" * 16 + "c3d4"
OTHER = "stanch-test-FAKE-other-" + "k" * 12
FMT = get("haproxy-json")
assert FMT is not None


def parse(path: Path) -> list[Parsed | Problem]:
    assert FMT is not None
    return list(FMT.parse(FileSource(str(path))))


def events(out: list[Parsed | Problem]) -> dict[int, Parsed]:
    return {p.line: p for p in out if isinstance(p, Parsed)}


def problems(out: list[Parsed | Problem]) -> dict[int, Problem]:
    return {p.line: p for p in out if isinstance(p, Problem)}


@pytest.fixture(scope="module")
def recorded() -> dict[int, Parsed]:
    out = parse(LOG)
    assert problems(out) == {}
    return events(out)


def test_bearer_line_gives_the_stanch_sha256_16_key(recorded: dict[int, Parsed]) -> None:
    # 2: {"time":"2026-11-29T05:32:51+0000","remote_addr":"127.0.0.1","method":"GET","uri":"\/api\/report.json",
    #     "status":200,"user_agent":"stanch-fixture\/1","token_fp":"54184e36b1594956","bytes":154,"tt_ms":0}
    e = recorded[2].event
    assert (e.time, e.src_ip, e.method, e.resource, e.status, e.bytes) == (
        "2026-11-29T05:32:51Z", "127.0.0.1", "GET", "/api/report.json", 200, 154)
    assert e.user_agent == "stanch-fixture/1"
    assert e.credential is not None and e.credential.keys == ("sha256/16:54184e36b1594956",)
    assert fingerprint(TOKEN).keys[1] == "sha256/16:54184e36b1594956"  # haproxy's sha2 == stanch's key
    assert (e.action, e.outcome, e.vendor, e.vendor_type) == ("api.call", "success", "haproxy", "access")
    assert e.vendor_id is None and recorded[2].id_text  # no %ID in the format: the record names the event
    assert e.extra["tt_ms"] == 0


def test_dpop_scheme_gives_the_same_key_and_other_token_another(recorded: dict[int, Parsed]) -> None:
    assert recorded[3].event.credential == recorded[2].event.credential
    # 8: "method":"POST","uri":"\/api\/items","status":200,"token_fp":"e12bc9f3fafdefff"
    e = recorded[8].event
    assert e.credential is not None and e.credential.keys == (fingerprint(OTHER).keys[1],)
    assert (e.method, e.resource, e.action) == ("POST", "/api/items", "api.call")


def test_no_token_401_is_auth_fail_and_404_with_token_is_a_failed_call(recorded: dict[int, Parsed]) -> None:
    # 4: "status":401,"token_fp":"-"
    e = recorded[4].event
    assert e.credential is None and (e.action, e.outcome, e.status) == ("auth.fail", "failure", 401)
    # 5: "uri":"\/api\/nope","status":404,"token_fp":"54184e36b1594956"
    e = recorded[5].event
    assert (e.resource, e.action, e.outcome) == ("/api/nope", "api.call", "failure")


def test_badreq_probe_and_escaped_fields(recorded: dict[int, Parsed]) -> None:
    # 1: "method":"<BADREQ>","uri":"-","status":400,"user_agent":"-" (a connection that sent nothing)
    e = recorded[1].event
    assert (e.method, e.resource, e.status, e.user_agent, e.action) == (None, None, 400, None, "other")
    assert e.extra["request"] == "<BADREQ>"
    # 6: "uri":"\/api\/report.json?x=%221%22","user_agent":"stanch-\"fixture\""
    e = recorded[6].event
    assert (e.resource, e.user_agent) == ("/api/report.json?x=%221%22", 'stanch-"fixture"')


def test_empty_word_fingerprint_is_not_a_credential(recorded: dict[int, Parsed]) -> None:
    # 7: Authorization without a scheme word: "token_fp":"e3b0c44298fc1c14" = sha256("")[:16]
    e = recorded[7].event
    assert e.raw["token_fp"] == "e3b0c44298fc1c14"  # type: ignore[index]
    assert e.credential is None and e.action == "other"
    assert "empty string" in e.extra["warning"]


def test_variants_full_digest_query_token_and_haproxy_keys(tmp_path: Path) -> None:
    full = fingerprint("stanch-test-FAKE-full").keys[0].removeprefix("sha256:")
    lines = [
        # 1: a 64-hex fingerprint, %ID, frontend/backend/server and termination state, +0200 offset
        json.dumps({"time": "2026-11-29T06:00:00+0200", "remote_addr": "198.51.100.4", "method": "get",
                    "uri": "/v1/me", "status": 200, "token_fp": full, "bytes": 10, "tt_ms": 3,
                    "request_id": "7F000001:ABCD_0A", "frontend": "fe", "backend": "api", "server": "api1",
                    "termination_state": "--"}),
        # 2: a token in the query string, no header
        json.dumps({"time": "2026-11-29T04:00:01+0000", "remote_addr": "198.51.100.5", "method": "GET",
                    "uri": "/v1/x?access_token=stanch-test-FAKE-qqqqqqqqqqqqqqqqqqqq&p=1", "status": 403,
                    "token_fp": "-", "bytes": 0, "tt_ms": 1}),
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ev = events(parse(path))
    e = ev[1].event
    assert e.time == "2026-11-29T04:00:00Z" and e.method == "GET"
    assert e.credential is not None and e.credential.keys == (f"sha256:{full}",)
    assert e.vendor_id == e.request_id == "7F000001:ABCD_0A" and ev[1].id_text is None
    assert (e.extra["frontend"], e.extra["backend"], e.extra["server"]) == ("fe", "api", "api1")
    e = ev[2].event
    assert e.resource == "/v1/x?access_token=[redacted]&p=1"
    assert e.credential is not None and e.credential.keys == fingerprint("stanch-test-FAKE-" + "q" * 20).keys
    assert "qqqq" not in json.dumps(e.extra) and (e.action, e.outcome) == ("auth.fail", "failure")


def test_bad_lines_are_problems_with_line_numbers(tmp_path: Path) -> None:
    good = LOG.read_text().splitlines()[1]
    text = "\n".join([
        good,
        "",  # 2 blank
        good[:40],  # 3 truncated
        "[1, 2]",  # 4 not an object
        '{"remote_addr":"127.0.0.1","method":"GET","uri":"/","status":200,"tt_ms":0}',  # 5 no time
        '{"time":"not-a-time","remote_addr":"127.0.0.1","status":200,"tt_ms":0}',  # 6 bad time
        good,
    ]) + "\n"
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    out = parse(path)
    assert sorted(events(out)) == [1, 7]
    probs = problems(out)
    assert {n: p.kind for n, p in probs.items()} == {2: "skipped", 3: "malformed", 4: "malformed", 5: "malformed",
                                                     6: "malformed"}
    assert probs[3].reason.startswith("invalid JSON")
    assert "not an object" in probs[4].reason and "no time" in probs[5].reason and "time" in probs[6].reason


OKTA_LINE = json.dumps({"uuid": "u1", "published": "2026-11-29T03:59:11.123Z", "eventType": "user.session.start",
                        "actor": {"id": "00u1", "type": "User"}, "client": {"ipAddress": "198.51.100.7"},
                        "outcome": {"result": "SUCCESS"}})
VAULT_LINE = json.dumps({"time": "2026-11-29T03:59:11.123456Z", "type": "response", "auth": {"accessor": "hmac-sha256:ab"},
                         "request": {"id": "r1", "operation": "read", "path": "secret/data/app",
                                     "remote_address": "127.0.0.1"}})
NGINX_LINE = json.dumps({"time": "2026-11-29T04:00:00+00:00", "remote_addr": "127.0.0.1", "method": "GET",
                         "uri": "/api/x", "status": 200, "user_agent": "curl/8", "token_fp": "54184e36b1594956",
                         "token_tail": "c3d4", "request_id": "abc", "bytes": 5})


def test_sniff() -> None:
    assert FMT.sniff(LOG.read_text().splitlines()) >= 0.5
    for other in (OKTA_LINE, VAULT_LINE, NGINX_LINE):
        assert FMT.sniff([other, other]) < 0.5, other
    assert FMT.sniff([]) == 0.0


@pytest.mark.peer
def test_live_haproxy_fingerprint_is_stanch_fingerprint(tmp_path: Path) -> None:
    """A real haproxy with the §5b config: its `token_fp` is stanch's `sha256/16:` key of the token."""
    exe = need_binary("haproxy", "apt-get install haproxy")
    spec = importlib.util.spec_from_file_location("haproxy_record", FIXTURES / "record.py")
    assert spec is not None and spec.loader is not None
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    out = tmp_path / "live.jsonl"
    assert record.record(out, exe) == 8
    ev = events(parse(out))
    assert [ev[n].event.credential.keys if ev[n].event.credential else None for n in (2, 3, 4, 8)] == [
        (fingerprint(TOKEN).keys[1],), (fingerprint(TOKEN).keys[1],), None, (fingerprint(OTHER).keys[1],)]
    assert TOKEN not in out.read_text()
