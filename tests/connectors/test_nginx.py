"""nginx connector: the combined access log and the gateway peer's JSON log, parsed into canonical events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import connectors.nginx  # noqa: F401  (registers the formats)
from casefile.formats import get
from casefile.records import Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource
from tests.peers import free_port, need, need_binary

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "nginx"
COMBINED_SAMPLE = FIXTURES / "elastic_examples_apache_logs_combined.log"
PEER_LOG = FIXTURES / "peer-access.jsonl"
PEER_CONF = FIXTURES / "peer"
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"

# The fake tokens the peer fixture was recorded with (tests/fixtures/nginx/peer/record.py); never real shapes.
PEER_TOKEN = "stanch-test-FAKE-" + "x" * 16 + "a1b2"
PEER_QUERY_TOKEN = "stanch-test-FAKE-query-" + "y" * 20

COMBINED = get("nginx-combined")
JSON = get("nginx-json")
assert COMBINED is not None and JSON is not None


def parse_file(fmt_name: str, path: Path) -> list[Parsed | Problem]:
    fmt = get(fmt_name)
    assert fmt is not None
    return list(fmt.parse(FileSource(str(path))))


def parse_text(fmt_name: str, text: str, tmp_path: Path) -> list[Parsed | Problem]:
    path = tmp_path / "access.log"
    path.write_text(text, encoding="utf-8")
    return parse_file(fmt_name, path)


def events(out: list[Parsed | Problem]) -> dict[int, Parsed]:
    return {p.line: p for p in out if isinstance(p, Parsed)}


def problems(out: list[Parsed | Problem]) -> dict[int, Problem]:
    return {p.line: p for p in out if isinstance(p, Problem)}


# ---------------------------------------------------------------- the combined sample (real traffic)


@pytest.fixture(scope="module")
def combined_sample() -> list[Parsed | Problem]:
    return parse_file("nginx-combined", COMBINED_SAMPLE)


def test_combined_sample_every_line_is_an_event(combined_sample: list[Parsed | Problem]) -> None:
    lines = COMBINED_SAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10_000
    # The file has no header, blank or unreadable line; its one odd line (8899) is handled below.
    assert problems(combined_sample) == {}
    parsed = events(combined_sample)
    assert len(parsed) == len(lines) - len(problems(combined_sample))
    # No vendor id: each event names its normalised line; repeated identical lines stay separate events.
    assert all(p.event.vendor_id is None and p.id_text for p in parsed.values())
    repeated = [p for p in parsed.values() if p.id_text and p.id_text.startswith('46.105.14.53 - - [18/May/2015:04:05:55')]
    assert len(repeated) == 4
    assert {p.event.vendor for p in parsed.values()} == {"nginx"}


def test_combined_sample_truncated_user_agent_line_is_kept_and_flagged(combined_sample: list[Parsed | Problem]) -> None:
    # Line 8899 was cut inside its last field (no closing quote after the user agent):
    # 46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html
    # Everything up to the user agent is whole, so the request is evidence: kept, and marked truncated.
    e = events(combined_sample)[8899].event
    assert (e.time, e.src_ip, e.method, e.resource, e.status, e.bytes) == (
        "2015-05-20T12:05:17Z", "46.118.127.106", "GET", "/scripts/grok-py-test/configlib.py", 200, 235)
    assert e.user_agent == "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html"
    assert e.extra["truncated"] == "user_agent"
    assert sum("truncated" in p.event.extra for p in events(combined_sample).values()) == 1


def test_combined_sample_line_32_query_string_and_referer(combined_sample: list[Parsed | Problem]) -> None:
    # 50.16.19.13 - - [17/May/2015:10:05:10 +0000] "GET /blog/tags/puppet?flav=rss20 HTTP/1.1" 200 14872 "http://www.semicomplete.com/blog/tags/puppet?flav=rss20" "Tiny Tiny RSS/1.11 (http://tt-rss.org/)"
    e = events(combined_sample)[32].event
    assert e.time == "2015-05-17T10:05:10Z"
    assert e.src_ip == "50.16.19.13"
    assert e.method == "GET"
    assert e.resource == "/blog/tags/puppet?flav=rss20"  # `flav` is not a secret name: kept as logged
    assert e.status == 200
    assert e.bytes == 14872
    assert e.user_agent == "Tiny Tiny RSS/1.11 (http://tt-rss.org/)"
    assert e.extra["referer"] == "http://www.semicomplete.com/blog/tags/puppet?flav=rss20"
    assert e.principal is None and e.credential is None
    assert (e.action, e.outcome) == ("other", "success")


def test_combined_sample_line_688_head_with_dash_bytes(combined_sample: list[Parsed | Problem]) -> None:
    # 89.170.74.95 - - [17/May/2015:16:05:27 +0000] "HEAD /projects/xdotool/ HTTP/1.1" 200 - "-" "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0"
    e = events(combined_sample)[688].event
    assert e.time == "2015-05-17T16:05:27Z"
    assert e.src_ip == "89.170.74.95"
    assert e.method == "HEAD"
    assert e.resource == "/projects/xdotool/"
    assert e.status == 200
    assert e.bytes == 0  # Apache's %b writes `-` for an empty body
    assert e.user_agent == "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0"
    assert "referer" not in e.extra


def test_combined_sample_line_5649_post_404_without_user_agent(combined_sample: list[Parsed | Problem]) -> None:
    # 78.173.140.106 - - [19/May/2015:09:05:53 +0000] "POST /blog/geekery/pyblosxom-mdate-vim-hack.html/trackback/ HTTP/1.1" 404 7861 "http://www.semicomplete.com/blog/geekery/pyblosxom-mdate-vim-hack.html" "-"
    e = events(combined_sample)[5649].event
    assert e.time == "2015-05-19T09:05:53Z"
    assert e.src_ip == "78.173.140.106"
    assert e.method == "POST"
    assert e.resource == "/blog/geekery/pyblosxom-mdate-vim-hack.html/trackback/"
    assert e.status == 404
    assert e.bytes == 7861
    assert e.user_agent is None
    assert e.outcome == "failure"


# ---------------------------------------------------------------- combined variants


def test_combined_variants(tmp_path: Path) -> None:
    text = "\n".join([
        # 1: nginx `main` (combined + "$http_x_forwarded_for"), a basic-auth user, a +02:00 offset
        '10.0.0.5 - alice [17/May/2015:12:05:10 +0200] "GET /admin/ HTTP/1.1" 200 512 "-" "curl/8.0" "203.0.113.9"',
        # 2: the request line nginx logs for a connection that sent nothing
        '10.0.0.6 - - [17/May/2015:10:05:11 +0000] "-" 400 0 "-" "-"',
        # 3: a TLS handshake sent to the plain-HTTP port (nginx writes the bytes as \\xXX)
        r'10.0.0.7 - - [17/May/2015:10:05:12 +0000] "\x16\x03\x01\x00\xA5\x01\x00\x00" 400 157 "-" "-"',
        # 4: the common log format (no referer or user agent)
        '10.0.0.8 - - [17/May/2015:10:05:13 +0000] "GET /index.html HTTP/1.0" 304 -',
        # 5: Apache's escaped quote inside the user agent
        r'10.0.0.9 - - [17/May/2015:10:05:14 +0000] "GET / HTTP/1.1" 200 5 "-" "Evil \"quoted\" agent"',
        # 6: a token in the query string and in the referer (misconfigured client)
        '10.0.0.10 - - [17/May/2015:10:05:15 +0000] "GET /api/x?page=2&access_token=stanch-test-FAKE-zzzzzzzzzzzzzzzzzzzz HTTP/1.1" 403 9 '
        '"https://app.example/cb?code=stanch-test-FAKE-code&state=s1" "curl/8.0"',
        "",
    ])
    out = parse_text("nginx-combined", text, tmp_path)
    assert problems(out) == {}
    ev = events(out)

    e = ev[1].event
    assert e.time == "2015-05-17T10:05:10Z"
    assert e.principal == "alice" and e.extra["xff"] == "203.0.113.9"
    assert (e.action, e.outcome) == ("api.call", "success")  # an authenticated user made the request

    e = ev[2].event
    assert (e.method, e.resource, e.status, e.user_agent) == (None, None, 400, None)
    assert "request" not in e.extra

    e = ev[3].event
    assert (e.method, e.resource, e.status, e.bytes) == (None, None, 400, 157)
    assert e.extra["request"] == r"\x16\x03\x01\x00\xA5\x01\x00\x00"

    e = ev[4].event
    assert (e.method, e.resource, e.status, e.bytes, e.user_agent) == ("GET", "/index.html", 304, 0, None)

    assert ev[5].event.user_agent == 'Evil "quoted" agent'

    e = ev[6].event
    token = "stanch-test-FAKE-" + "z" * 20
    assert e.resource == "/api/x?page=2&access_token=[redacted]"
    assert e.extra["referer"] == "https://app.example/cb?code=[redacted]&state=s1"
    assert e.credential is not None and e.credential.keys == fingerprint(token).keys
    assert (e.action, e.outcome) == ("auth.fail", "failure")
    # The raw value is nowhere but in `raw` (which the case file redacts on ingest).
    for name in ("resource", "user_agent", "principal", "request_id"):
        assert token not in str(getattr(e, name))
    assert token not in json.dumps(e.extra) and "stanch-test-FAKE-code" not in json.dumps(e.extra)
    assert e.credential.preview == fingerprint(token).preview


def test_combined_bad_lines_are_problems_with_line_numbers(tmp_path: Path) -> None:
    good = '10.0.0.5 - - [17/May/2015:10:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0"'
    text = "\n".join([
        good,
        "",  # 2 blank
        "this is not an access log line",  # 3
        '10.0.0.5 - - [32/Foo/2015:99:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0"',  # 4 bad time
        '10.0.0.5 - - [17/May/2015:10:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" curl/8.0',  # 5 unquoted UA
        "\x00\x01\x02 binary junk \ufffd",  # 6
        good,
    ]) + "\n"
    out = parse_text("nginx-combined", text, tmp_path)
    assert sorted(events(out)) == [1, 7]
    probs = problems(out)
    assert {n: p.kind for n, p in probs.items()} == {2: "skipped", 3: "malformed", 4: "malformed",
                                                     5: "malformed", 6: "malformed"}
    assert "time" in probs[4].reason
    assert "user agent" in probs[5].reason


# ---------------------------------------------------------------- the gateway peer's JSON log (recorded)


@pytest.fixture(scope="module")
def peer_fixture() -> dict[int, Parsed]:
    out = parse_file("nginx-json", PEER_LOG)
    assert problems(out) == {}
    return events(out)


def test_peer_fixture_bearer_key_is_stanch_fingerprint(peer_fixture: dict[int, Parsed]) -> None:
    # Line 1: GET /api/report.json with `Authorization: Bearer <PEER_TOKEN>`, answered 200.
    e = peer_fixture[1].event
    fp = fingerprint(PEER_TOKEN)
    assert fp.keys[1].startswith("sha256/16:")
    assert e.credential is not None
    assert e.credential.keys == (fp.keys[1],)
    assert e.credential.kind == "access"
    assert (e.action, e.outcome, e.status, e.method, e.resource) == ("api.call", "success", 200, "GET", "/api/report.json")
    assert e.time.endswith("Z") and e.src_ip == "127.0.0.1" and e.user_agent == "stanch-fixture/1"
    assert isinstance(e.raw, dict) and e.vendor_id == e.raw["request_id"] == e.request_id
    assert peer_fixture[1].id_text is None  # the vendor id names the event
    # token_tail was cut to 4 characters in the fixture and is never a key or a preview
    assert e.raw["token_tail"] == PEER_TOKEN[-4:]
    assert e.credential.preview is None
    assert e.extra["token_active"] == "1"


def test_peer_fixture_dpop_scheme_gives_the_same_key(peer_fixture: dict[int, Parsed]) -> None:
    # Line 2: the same token sent as `Authorization: DPoP <PEER_TOKEN>`.
    e = peer_fixture[2].event
    assert e.credential is not None and e.credential.keys == peer_fixture[1].event.credential.keys  # type: ignore[union-attr]
    assert e.credential.keys[0] == fingerprint("DPoP " + PEER_TOKEN).keys[1]


def test_peer_fixture_no_token_has_no_credential_and_is_refused(peer_fixture: dict[int, Parsed]) -> None:
    # Line 3: no Authorization header; the gateway answered 401 and logged token_fp "-".
    e = peer_fixture[3].event
    assert e.raw["token_fp"] == "-"  # type: ignore[index]
    assert e.credential is None
    assert (e.action, e.outcome, e.status) == ("auth.fail", "failure", 401)


def test_peer_fixture_revoked_token_401_is_auth_fail_for_that_credential(peer_fixture: dict[int, Parsed]) -> None:
    # Line 4: the token on /revoked/, answered 401 (what the gateway does once a token is revoked).
    e = peer_fixture[4].event
    assert e.credential is not None and e.credential.keys == (fingerprint(PEER_TOKEN).keys[1],)
    assert (e.action, e.outcome, e.status) == ("auth.fail", "failure", 401)
    assert e.extra["token_active"] == "0"


def test_peer_fixture_token_in_query_is_fingerprinted_and_removed(peer_fixture: dict[int, Parsed]) -> None:
    # Line 5: GET /api/export?access_token=<PEER_QUERY_TOKEN>&page=2 without a header (a misconfigured client).
    e = peer_fixture[5].event
    assert e.resource == "/api/export?access_token=[redacted]&page=2"
    assert e.credential is not None and e.credential.keys == fingerprint(PEER_QUERY_TOKEN).keys
    assert (e.action, e.status) == ("auth.fail", 401)


def test_peer_fixture_post(peer_fixture: dict[int, Parsed]) -> None:
    e = peer_fixture[6].event
    assert (e.method, e.resource, e.status, e.action) == ("POST", "/api/items", 200, "api.call")
    assert len(peer_fixture) == 6


# ---------------------------------------------------------------- JSON variants and bad lines


def test_json_variants(tmp_path: Path) -> None:
    full_hash = fingerprint("stanch-test-FAKE-full").keys[0].removeprefix("sha256:")
    lines = [
        # 1: the connectors.md §6.5 format, with an unquoted `$upstream_response_time` that rendered as `-`
        '{"time":"2026-11-29T04:00:00+01:00","remote_addr":"198.51.100.7","xff":"203.0.113.5","method":"GET",'
        '"uri":"/v1/items","status":200,"bytes":1234,"rt":0.004,"ua":"okhttp/4.12","request_id":"r-1",'
        '"upstream":"10.0.0.2:8080","urt":-}',
        # 2: a format without escape=json (`\x22` escapes) and nginx-style variable names, no request id
        r'{"time_local":"29/Nov/2026:04:00:01 +0000","remote_addr":"198.51.100.8","request":"GET /q?x=\x22a\x22 HTTP/1.1",'
        r'"status":"404","body_bytes_sent":"0","http_user_agent":"curl/8.0","http_x_forwarded_for":"-","request_time":-}',
        # 3: a full 64-hex fingerprint
        '{"time":"2026-11-29T04:00:02Z","remote_addr":"198.51.100.9","method":"GET","uri":"/v1/me","status":200,'
        f'"token_fp":"{full_hash}","request_id":"r-3"}}',
        # 4: a misconfigured log that writes $http_authorization
        '{"time":"2026-11-29T04:00:03Z","remote_addr":"198.51.100.9","method":"GET","uri":"/v1/me","status":403,'
        '"http_authorization":"DPoP stanch-test-FAKE-raw-header-0123","request_id":"r-4"}',
    ]
    out = parse_text("nginx-json", "\n".join(lines) + "\n", tmp_path)
    assert problems(out) == {}
    ev = events(out)

    e = ev[1].event
    assert e.time == "2026-11-29T03:00:00Z"
    assert (e.src_ip, e.method, e.resource, e.status, e.bytes, e.user_agent) == (
        "198.51.100.7", "GET", "/v1/items", 200, 1234, "okhttp/4.12")
    assert e.extra["xff"] == "203.0.113.5" and e.extra["request_time"] == 0.004
    assert e.vendor_id == "r-1" and e.credential is None
    assert (e.action, e.outcome) == ("other", "success")

    e = ev[2].event
    assert e.time == "2026-11-29T04:00:01Z"
    assert (e.method, e.resource, e.status, e.bytes, e.user_agent) == ("GET", '/q?x="a"', 404, 0, "curl/8.0")
    assert "xff" not in e.extra
    assert e.vendor_id is None and ev[2].id_text  # no request id: the normalised record names the event

    e = ev[3].event
    assert e.credential is not None and e.credential.keys == (f"sha256:{full_hash}",)

    e = ev[4].event
    fp = fingerprint("stanch-test-FAKE-raw-header-0123")
    assert e.credential is not None and e.credential.keys == fp.keys
    assert e.credential.binding == "dpop" and e.credential.preview == fp.preview
    assert "http_authorization" in e.extra["warning"]
    assert (e.action, e.outcome) == ("auth.fail", "failure")


def test_json_bad_lines_are_problems_with_line_numbers(tmp_path: Path) -> None:
    good = PEER_LOG.read_text(encoding="utf-8").splitlines()[0]
    text = "\n".join([
        good,
        good[: len(good) // 2],  # 2 truncated JSON (a log cut mid-write)
        "",  # 3 blank
        "GET /index.html 200",  # 4 not JSON
        "[1, 2, 3]",  # 5 JSON, not an object
        '{"remote_addr":"10.0.0.1","uri":"/","status":200}',  # 6 no time
        '{"time":"yesterday-ish","remote_addr":"10.0.0.1","uri":"/","status":200}',  # 7 bad time
        "\x00\xff{{{",  # 8 garbage
        good,
    ]) + "\n"
    out = parse_text("nginx-json", text, tmp_path)
    assert sorted(events(out)) == [1, 9]
    probs = problems(out)
    assert {n: p.kind for n, p in probs.items()} == {2: "malformed", 3: "skipped", 4: "malformed", 5: "malformed",
                                                     6: "malformed", 7: "malformed", 8: "malformed"}
    assert "invalid JSON" in probs[2].reason
    assert "not an object" in probs[5].reason
    assert "no time" in probs[6].reason
    assert "time" in probs[7].reason


# ---------------------------------------------------------------- sniffing

OKTA_LINE = json.dumps({
    "uuid": "7b0e7ad4-0000-11ef-9a3e-000000000000", "published": "2026-11-29T03:59:11.123Z",
    "eventType": "user.session.start", "version": "0", "severity": "INFO", "displayMessage": "User login to Okta",
    "actor": {"id": "00u1", "type": "User", "alternateId": "a@example.com"},
    "client": {"ipAddress": "198.51.100.7", "userAgent": {"rawUserAgent": "curl/8.0"}},
    "outcome": {"result": "SUCCESS"}, "target": [],
})
VAULT_LINE = json.dumps({
    "time": "2026-11-29T03:59:11.123456Z", "type": "response",
    "auth": {"accessor": "hmac-sha256:abcd", "display_name": "token", "policies": ["default"]},
    "request": {"id": "5f2c-1", "operation": "read", "path": "secret/data/app", "remote_address": "127.0.0.1",
                "client_token": "hmac-sha256:ef01"},
    "response": {"data": {"password": "hmac-sha256:1234"}},
})


def test_json_sniff_claims_the_peer_log_and_not_other_vendors() -> None:
    peer_lines = PEER_LOG.read_text(encoding="utf-8").splitlines()
    assert JSON.sniff(peer_lines) >= 0.5
    assert JSON.sniff([OKTA_LINE, OKTA_LINE]) < 0.5
    assert JSON.sniff([VAULT_LINE, VAULT_LINE]) < 0.5
    assert JSON.sniff(COMBINED_SAMPLE.read_text(encoding="utf-8").splitlines()[:20]) < 0.5


def test_combined_sniff_claims_the_sample_and_not_json() -> None:
    sample_head = COMBINED_SAMPLE.read_text(encoding="utf-8").splitlines()[:20]
    assert COMBINED.sniff(sample_head) >= 0.5
    assert COMBINED.sniff(PEER_LOG.read_text(encoding="utf-8").splitlines()) < 0.5
    assert COMBINED.sniff([OKTA_LINE, VAULT_LINE]) < 0.5
    assert COMBINED.sniff([]) == 0.0 and JSON.sniff([]) == 0.0


# ---------------------------------------------------------------- live peer: nginx + njs


@pytest.mark.peer
def test_live_gateway_fingerprint_is_stanch_fingerprint(tmp_path: Path) -> None:
    """The gateway's njs `token_fp` and stanch's `sha256/16:` key are the same function of the token."""
    nginx = need_binary("nginx", "apt-get install nginx libnginx-mod-http-js")
    need(os.path.exists(NJS_MODULE), f"the njs module ({NJS_MODULE})", "apt-get install libnginx-mod-http-js")
    work = tmp_path / "gw"
    (work / "logs").mkdir(parents=True)
    (work / "tmp").mkdir()
    shutil.copy(PEER_CONF / "gw.js", work / "gw.js")
    port = free_port()
    conf = (PEER_CONF / "nginx.conf.template").read_text(encoding="utf-8")
    (work / "nginx.conf").write_text(conf.replace("@DIR@", str(work)).replace("@PORT@", str(port)), encoding="utf-8")
    token = "stanch-test-FAKE-live-" + os.urandom(12).hex()
    proc = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-e", str(work / "logs" / "error.log")])
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (work / "logs" / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer within 10 s"
                time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=5) as c:
            r1 = c.get("/api/report.json", headers={"Authorization": f"Bearer {token}"})
            r2 = c.get("/api/report.json", headers={"Authorization": f"DPoP {token}"})
            r3 = c.get("/api/report.json")
        assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 401)
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    out = parse_file("nginx-json", work / "logs" / "access.jsonl")
    assert problems(out) == {}
    api = [p.event for p in events(out).values() if p.event.resource == "/api/report.json"]
    assert len(api) == 3
    key = fingerprint(token).keys[1]
    assert [e.credential.keys if e.credential else None for e in api] == [(key,), (key,), None]
    assert [e.action for e in api] == ["api.call", "api.call", "auth.fail"]
    # nginx wrote the token's tail, never the token
    assert token not in (work / "logs" / "access.jsonl").read_text(encoding="utf-8")
