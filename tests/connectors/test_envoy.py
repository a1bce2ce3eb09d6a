"""`envoy-access`: Envoy access logs (default text, Istio text, JSON, and container-wrapped lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import connectors.envoy  # noqa: F401  (registers the format)
from casefile.formats import get
from casefile.records import Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "envoy"
SAMPLE = FIXTURES / "elastic_envoyproxy_test-log.log"
FMT = get("envoy-access")
assert FMT is not None


def parse(path: Path) -> list[Parsed | Problem]:
    assert FMT is not None
    return list(FMT.parse(FileSource(str(path))))


def parse_text(text: str, tmp_path: Path) -> list[Parsed | Problem]:
    path = tmp_path / "envoy.log"
    path.write_text(text, encoding="utf-8")
    return parse(path)


def events(out: list[Parsed | Problem]) -> dict[int, Parsed]:
    return {p.line: p for p in out if isinstance(p, Parsed)}


def problems(out: list[Parsed | Problem]) -> dict[int, Problem]:
    return {p.line: p for p in out if isinstance(p, Problem)}


@pytest.fixture(scope="module")
def sample() -> dict[int, Parsed]:
    out = parse(SAMPLE)
    assert problems(out) == {}
    return events(out)


def test_sample_default_text_line(sample: dict[int, Parsed]) -> None:
    # 4: [2019-04-11T00:51:07.980Z] "GET /elastic/ HTTP/1.1" 301 - 0 0 41 39 "172.17.0.3" "curl/7.59.0"
    #    "078d1daa-b786-4d6d-85a5-7e4366adaa19" "www.elastic.co" "192.168.1.10:80"
    e = sample[4].event
    assert (e.time, e.method, e.resource, e.status, e.bytes) == ("2019-04-11T00:51:07.980Z", "GET", "/elastic/", 301, 0)
    assert (e.src_ip, e.user_agent) == ("172.17.0.3", "curl/7.59.0")
    assert e.vendor_id == e.request_id == "078d1daa-b786-4d6d-85a5-7e4366adaa19" and sample[4].id_text is None
    assert (e.extra["authority"], e.extra["upstream_host"], e.extra["duration_ms"], e.extra["upstream_service_time_ms"]) == (
        "www.elastic.co", "192.168.1.10:80", 41, 39)
    assert e.extra["protocol"] == "HTTP/1.1" and "response_flags" not in e.extra
    assert (e.action, e.outcome, e.vendor, e.credential) == ("other", "success", "envoy", None)


def test_sample_no_route_flag_and_tcp_lines(sample: dict[int, Parsed]) -> None:
    # 3: [2019-04-11T00:31:55.439Z] "GET /elastic HTTP/1.1" 404 NR 0 0 0 - "172.17.0.3" ... "-"
    e = sample[3].event
    assert (e.status, e.outcome, e.extra["response_flags"]) == (404, "failure", "NR")
    assert "upstream_host" not in e.extra and "upstream_service_time_ms" not in e.extra
    # 1: [2019-04-08T16:50:12.533Z] "- - -" 0 - 87 254 4 - "-" "-" "-" "-" "172.27.0.2:80"  (TCP proxy)
    e = sample[1].event
    assert (e.time, e.method, e.resource, e.status, e.bytes, e.src_ip, e.vendor_id) == (
        "2019-04-08T16:50:12.533Z", None, None, 0, 254, None, None)
    assert e.extra["bytes_received"] == 87 and e.outcome == "unknown"
    assert sample[1].id_text == SAMPLE.read_text().splitlines()[0]  # no request id: the line names the event


def test_sample_access_prefix_and_wrapped_lines(sample: dict[int, Parsed]) -> None:
    # 5: ACCESS [2024-04-25T17:51:55.294Z] "GET /backend/ HTTP/1.1" 200 - 0 141 0 0 "192.168.0.9" "curl/8.4.0" ...
    e = sample[5].event
    assert (e.time, e.resource, e.bytes, e.src_ip) == ("2024-04-25T17:51:55.294Z", "/backend/", 141, "192.168.0.9")
    # 6: {"message":"ACCESS [2019-04-10T03:49:34.451Z] \"GET /httpbin/status/501 HTTP/1.1\" 501 - 0 0 180 179
    #    \"172.17.0.3\" ... \"413bf460-bd56-4515-ada4-2a69c5e78e54\" \"httpbin.org\" \"67.43.156.18:80\"",
    #    "stream":"stdout","time":"2019-02-12T18:37:43.139620629Z", "kubernetes": {... "pod": {"name": "ambassador-76c58d9df4-jwhsg"}}}
    e = sample[6].event
    assert e.time == "2019-04-10T03:49:34.451Z"  # the request's START_TIME, not the wrapper's time
    assert (e.resource, e.status, e.outcome, e.vendor_id) == ("/httpbin/status/501", 501, "failure",
                                                              "413bf460-bd56-4515-ada4-2a69c5e78e54")
    assert isinstance(e.raw, dict) and e.raw["stream"] == "stdout"
    assert (e.extra["pod"], e.extra["namespace"], e.extra["container"]) == ("ambassador-76c58d9df4-jwhsg", "default",
                                                                            "ambassador")
    # 7: wrapped TCP line with flags UF,URX
    e = sample[7].event
    assert (e.status, e.extra["response_flags"], e.extra["upstream_host"]) == (0, "UF,URX", "127.0.0.1:9200")


def test_istio_text_json_and_docker_wrapped(tmp_path: Path) -> None:
    token = "stanch-test-FAKE-envoy-" + "e" * 20
    istio = ('[2026-11-29T04:00:00.123Z] "POST /v1/orders HTTP/2" 403 UAEX ext_authz_denied - "-" 12 0 3 - '
             '"203.0.113.5,10.0.0.9" "okhttp/4.12" "r-istio-1" "api.example" "-" outbound|80||api.default '
             '- 10.0.0.5:8080 10.0.0.9:43210 api.example default')
    rec = {"start_time": "2026-11-29T04:00:01.000Z", "method": "GET", "path": "/v1/me", "protocol": "HTTP/1.1",
           "response_code": "200", "response_flags": "-", "bytes_received": "0", "bytes_sent": "42",
           "duration": "7", "x_forwarded_for": "-", "user_agent": "curl/8.0", "request_id": "-",
           "authority": "api.example", "upstream_host": "10.0.0.2:8080",
           "downstream_remote_address": "198.51.100.9:51234", "authorization": f"Bearer {token}"}
    typed = {"start_time": "2026-11-29T05:00:02+01:00", "method": "DELETE", "path": "/v1/keys/1",
             "response_code": 204, "bytes_sent": 0, "request_id": "r-typed", "upstream_cluster": "api",
             "downstream_remote_address": "[2001:db8::7]:443", "user_agent": None}
    docker = json.dumps({"log": istio + "\n", "stream": "stdout", "time": "2026-11-29T04:00:09.5Z"})
    text = "\n".join([istio, json.dumps(rec), json.dumps(typed), docker]) + "\n"
    out = parse_text(text, tmp_path)
    assert problems(out) == {}
    ev = events(out)

    e = ev[1].event
    assert (e.time, e.method, e.resource, e.status) == ("2026-11-29T04:00:00.123Z", "POST", "/v1/orders", 403)
    assert e.src_ip == "10.0.0.9"  # DOWNSTREAM_REMOTE_ADDRESS without its port wins over X-Forwarded-For
    assert e.extra["xff"] == "203.0.113.5,10.0.0.9"
    assert (e.extra["response_code_details"], e.extra["upstream_cluster"], e.extra["route"], e.extra["sni"]) == (
        "ext_authz_denied", "outbound|80||api.default", "default", "api.example")
    assert (e.action, e.outcome) == ("auth.fail", "failure")

    e = ev[2].event
    assert (e.time, e.method, e.resource, e.status, e.bytes, e.src_ip) == (
        "2026-11-29T04:00:01.000Z", "GET", "/v1/me", 200, 42, "198.51.100.9")
    assert e.vendor_id is None and ev[2].id_text
    assert e.credential is not None and e.credential.keys == fingerprint(token).keys
    assert e.action == "api.call" and "authorization" in e.extra["warning"]
    assert token not in json.dumps(e.extra) and token not in str(e.resource)

    e = ev[3].event
    assert (e.time, e.status, e.src_ip, e.user_agent, e.vendor_id) == (
        "2026-11-29T04:00:02Z", 204, "2001:db8::7", None, "r-typed")

    e = ev[4].event
    assert e.vendor_id == ev[1].event.vendor_id == "r-istio-1" and e.extra["stream"] == "stdout"
    assert e.time == ev[1].event.time


def test_status_to_action_mapping(tmp_path: Path) -> None:
    def line(code: str, flags: str = "-") -> str:
        return f'[2026-11-29T04:00:00Z] "GET / HTTP/1.1" {code} {flags} 0 0 1 - "-" "-" "-" "h" "-"'
    out = parse_text("\n".join([line("401"), line("200", "UAEX"), line("503", "UF"), line("200")]), tmp_path)
    got = [(p.event.action, p.event.outcome) for p in events(out).values()]
    assert got == [("auth.fail", "failure"), ("auth.fail", "failure"), ("other", "failure"), ("other", "success")]


def test_bad_lines_are_problems_with_line_numbers(tmp_path: Path) -> None:
    good = SAMPLE.read_text().splitlines()[1]
    text = "\n".join([
        good,
        "",  # 2 blank
        "[not a time] \"GET / HTTP/1.1\" 200 - 0 0 1 - \"-\" \"-\" \"-\" \"-\" \"-\"",  # 3 bad time
        "starting envoy: [info] all clusters initialized",  # 4 noise from the envoy log itself
        '{"log": "[2019-04-08T16:16:55.931Z] \\"GET', # 5 truncated JSON
        '{"log": "some application output", "stream": "stderr"}',  # 6 wrapped non-envoy line
        '{"level": "info", "msg": "hello"}',  # 7 JSON, not envoy
        good[:60],  # 8 truncated text line
        good,
    ]) + "\n"
    out = parse_text(text, tmp_path)
    assert sorted(events(out)) == [1, 9]
    probs = problems(out)
    assert {n: p.kind for n, p in probs.items()} == {2: "skipped", 3: "malformed", 4: "malformed", 5: "malformed",
                                                     6: "malformed", 7: "malformed", 8: "malformed"}
    assert "start time" in probs[3].reason
    assert probs[5].reason.startswith("invalid JSON")
    assert probs[6].reason.startswith("wrapped line")


OKTA_LINE = json.dumps({"uuid": "u1", "published": "2026-11-29T03:59:11.123Z", "eventType": "user.session.start",
                        "actor": {"id": "00u1", "type": "User"}, "client": {"ipAddress": "198.51.100.7"},
                        "outcome": {"result": "SUCCESS"}})
VAULT_LINE = json.dumps({"time": "2026-11-29T03:59:11.123456Z", "type": "response", "auth": {"accessor": "hmac-sha256:ab"},
                         "request": {"id": "r1", "operation": "read", "path": "secret/data/app",
                                     "remote_address": "127.0.0.1"}})
NGINX_LINE = json.dumps({"time": "2026-11-29T04:00:00+00:00", "remote_addr": "127.0.0.1", "method": "GET",
                         "uri": "/api/x", "status": 200, "user_agent": "curl/8", "token_fp": "54184e36b1594956",
                         "request_id": "abc", "bytes": 5})
COMBINED_LINE = '10.0.0.5 - - [17/May/2015:10:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0"'


def test_sniff() -> None:
    assert FMT.sniff(SAMPLE.read_text().splitlines()) >= 0.5
    for other in (OKTA_LINE, VAULT_LINE, NGINX_LINE, COMBINED_LINE):
        assert FMT.sniff([other, other]) < 0.5, other
    assert FMT.sniff([]) == 0.0
