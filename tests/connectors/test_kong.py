"""`kong-log`: Kong Gateway log-plugin entries (http-log batch arrays, file-log JSON lines, pretty objects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import connectors.kong  # noqa: F401  (registers the format)
from casefile.formats import get
from casefile.records import Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kong"
BATCH = FIXTURES / "axway_kong_2.2.1_http-log_batch.json"
ENTRY = FIXTURES / "kong-3.8-log-plugin-entry.json"
FMT = get("kong-log")
assert FMT is not None


def parse(path: Path) -> list[Parsed | Problem]:
    assert FMT is not None
    return list(FMT.parse(FileSource(str(path))))


def parse_text(text: str, tmp_path: Path, name: str = "kong.log") -> list[Parsed | Problem]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return parse(path)


def events(out: list[Parsed | Problem]) -> dict[int, Parsed]:
    return {p.line: p for p in out if isinstance(p, Parsed)}


def problems(out: list[Parsed | Problem]) -> dict[int, Problem]:
    return {p.line: p for p in out if isinstance(p, Problem)}


def entry(**over: object) -> dict:
    """A file-log entry shaped like the fixtures (Kong's serializer fields)."""
    base: dict = {
        "started_at": 1764388800123, "client_ip": "198.51.100.20",
        "request": {"method": "GET", "uri": "/orders?page=2", "url": "http://api.example:8000/orders?page=2",
                    "querystring": {"page": "2"}, "size": 120,
                    "headers": {"host": "api.example:8000", "user-agent": "okhttp/4.12", "authorization": "REDACTED"}},
        "response": {"status": 200, "size": 512, "headers": {"content-type": "application/json"}},
        "route": {"id": "r-1", "name": "orders"}, "service": {"id": "s-1", "name": "orders-svc"},
        "latencies": {"kong": 2, "proxy": 10, "request": 12}, "upstream_uri": "/orders?page=2",
        "authenticated_entity": {"id": "cred-0001"},
        "consumer": {"id": "cons-0001", "username": "billing-app", "custom_id": "app-77"},
    }
    base.update(over)
    return base


def test_batch_array_items_are_events(tmp_path: Path) -> None:
    out = parse(BATCH)
    assert problems(out) == {}
    ev = events(out)
    assert sorted(ev) == [1, 2]  # provenance = item index in the array
    # item 1: "started_at": 1614232668342, "client_ip": "192.168.144.1", request {"uri": "/log", "method": "GET",
    # "headers": {"user-agent": "HTTPie/2.4.0", ...}}, response {"status": 200, "size": 827},
    # "authenticated_entity": {"id": "c62c1455-9b1d-4f2d-8797-509ba83b8ae8"},
    # "consumer": {"id": "ae974d6c-0f8a-4dc5-b701-fa0aa38592bd", "username": "foo", ...}
    e = ev[1].event
    assert (e.time, e.src_ip, e.method, e.resource, e.status, e.bytes) == (
        "2021-02-25T05:57:48.342Z", "192.168.144.1", "GET", "/log", 200, 827)
    assert e.user_agent == "HTTPie/2.4.0" and e.principal == "foo" and e.client is None
    assert e.credential is not None and e.credential.keys == ("kong-credential:c62c1455-9b1d-4f2d-8797-509ba83b8ae8",)
    assert e.credential.principal == "foo"
    assert (e.action, e.outcome, e.vendor, e.vendor_type) == ("api.call", "success", "kong", "access")
    assert e.extra["upstream_uri"] == "/anything" and e.extra["workspace"] == "default"
    assert e.extra["service"] == "167290ee-c682-4ebf-bdea-e49a3ac5e260"  # no service name: its id
    # No request id in Kong 2.2: each entry is named by its normalised record; item 2 lacks "workspace".
    assert e.vendor_id is None and ev[1].id_text and ev[2].id_text and ev[1].id_text != ev[2].id_text


def test_kong_38_pretty_entry_unauthenticated() -> None:
    out = parse(ENTRY)
    assert problems(out) == {}
    ev = events(out)
    assert list(ev) == [1]  # the line where the object starts
    # "started_at": 1726783839538, "client_ip": "192.168.65.1", request {"id": "2f6946328ffc4946b8c9120704a4a155",
    # "uri": "/example-route", "method": "GET"}, response {"status": 200, "size": 9982},
    # route {"name": "example_route"}, service {"name": "example_service"}, "upstream_uri": "/"
    e = ev[1].event
    assert (e.time, e.src_ip, e.method, e.resource, e.status, e.bytes) == (
        "2024-09-19T22:10:39.538Z", "192.168.65.1", "GET", "/example-route", 200, 9982)
    assert e.vendor_id == e.request_id == "2f6946328ffc4946b8c9120704a4a155" and ev[1].id_text is None
    assert (e.extra["route"], e.extra["service"], e.extra["upstream_uri"], e.extra["source"]) == (
        "example_route", "example_service", "/", "upstream")
    assert e.extra["latencies_ms"] == {"kong": 1, "proxy": 171, "request": 173, "receive": 1}
    assert (e.credential, e.principal, e.action, e.outcome) == (None, None, "other", "success")


def test_json_lines_credentials_principal_client(tmp_path: Path) -> None:
    key = "stanch-test-FAKE-kongkey-" + "k" * 16
    bearer = "stanch-test-FAKE-bearer-" + "b" * 16
    qkey = "stanch-test-FAKE-qkey-" + "q" * 16
    e1 = entry()
    e2 = entry(request={"method": "POST", "uri": "/orders", "querystring": {},
                        "headers": {"apikey": key, "user-agent": ["curl/8.0", "dup"],
                                    "x-kong-request-id": "kreq-2"}})
    e3 = entry(request={"method": "GET", "uri": f"/orders?apikey={qkey}&x=1", "querystring": {"apikey": qkey, "x": "1"},
                        "headers": {"authorization": f"DPoP {bearer}"}},
               response={"status": 401, "size": 40}, consumer=None, authenticated_entity=None)
    e4 = entry(request={"method": "GET", "uri": "/", "headers": {"apikey": key, "authorization": f"Bearer {bearer}"}})
    text = "\n".join(json.dumps(x) for x in (e1, e2, e3, e4)) + "\n"
    out = parse_text(text, tmp_path)
    assert problems(out) == {}
    ev = events(out)

    e = ev[1].event
    assert e.time == "2025-11-29T04:00:00.123Z"  # 1764388800123 ms
    assert (e.principal, e.client) == ("billing-app", "app-77")
    assert e.credential is not None and e.credential.keys == ("kong-credential:cred-0001",)  # REDACTED is no value
    assert (e.credential.principal, e.credential.client) == ("billing-app", "app-77")
    assert (e.extra["route"], e.extra["service"]) == ("orders", "orders-svc")
    assert e.vendor_id is None and ev[1].id_text

    e = ev[2].event
    fp = fingerprint(key)
    assert e.credential is not None and e.credential.keys == ("kong-credential:cred-0001", *fp.keys)
    assert (e.credential.kind, e.credential.preview) == ("api-key", fp.preview)
    assert e.user_agent == "curl/8.0" and e.vendor_id == "kreq-2"

    e = ev[3].event
    assert e.resource == "/orders?apikey=[redacted]&x=1"
    # headers come before the query string: the DPoP token is the credential, the query key is listed aside
    assert e.credential is not None and e.credential.keys == fingerprint(bearer).keys
    assert (e.credential.kind, e.credential.binding) == ("access", "dpop")
    assert e.extra["other_credentials"] == [fingerprint(qkey).keys[1]]
    assert (e.action, e.outcome, e.principal) == ("auth.fail", "failure", None)

    e = ev[4].event
    assert e.credential is not None and e.credential.keys[:3] == ("kong-credential:cred-0001", *fingerprint(key).keys)
    for p in ev.values():
        dumped = json.dumps(p.event.extra) + str(p.event.resource) + str(p.event.user_agent)
        assert key not in dumped and bearer not in dumped and qkey not in dumped


def test_status_to_action_mapping(tmp_path: Path) -> None:
    anon = {"consumer": None, "authenticated_entity": None}
    rows = [entry(response={"status": 403}), entry(response={"status": 500}), entry(response={"status": 200}, **anon),
            entry(response={"status": 401}, **anon)]
    out = parse_text("\n".join(json.dumps(r) for r in rows), tmp_path)
    got = [(p.event.action, p.event.outcome) for p in events(out).values()]
    assert got == [("auth.fail", "failure"), ("api.call", "failure"), ("other", "success"), ("auth.fail", "failure")]


def test_bad_lines_are_problems_with_line_numbers(tmp_path: Path) -> None:
    good = json.dumps(entry())
    pretty = json.dumps(entry(), indent=2).splitlines()
    text = "\n".join([
        good,  # 1
        "",  # 2 blank
        good[:50],  # 3 truncated (opens an object, cut by the next `{` line)
        json.dumps({k: v for k, v in entry().items() if k != "started_at"}),  # 4 no started_at
        json.dumps(entry(started_at="soon")),  # 5 bad time
        "[1]",  # 6 not an object
        "hello",  # 7 not JSON
        *pretty,  # 8.. a pretty-printed entry
        good,
    ]) + "\n"
    out = parse_text(text, tmp_path)
    n_last = 8 + len(pretty)
    assert sorted(events(out)) == [1, 8, n_last]
    probs = problems(out)
    assert {n: p.kind for n, p in probs.items()} == {2: "skipped", 3: "malformed", 4: "malformed", 5: "malformed",
                                                     6: "malformed", 7: "malformed"}
    assert probs[3].reason.startswith("JSON object not closed before line 4")
    assert "started_at" in probs[4].reason and "started_at" in probs[5].reason
    assert "not a Kong log entry" in probs[6].reason and probs[7].reason.startswith("invalid JSON")


def test_broken_batch_array(tmp_path: Path) -> None:
    text = "[" + json.dumps(entry()) + "," + json.dumps(entry(response={"status": 404}))[:80]
    out = parse_text(text, tmp_path, "batch.json")
    assert sorted(events(out)) == [1]
    assert problems(out)[2].reason.startswith("JSON array truncated or broken after item 1")


OKTA_LINE = json.dumps({"uuid": "u1", "published": "2026-11-29T03:59:11.123Z", "eventType": "user.session.start",
                        "actor": {"id": "00u1", "type": "User"}, "client": {"ipAddress": "198.51.100.7"},
                        "outcome": {"result": "SUCCESS"}})
VAULT_LINE = json.dumps({"time": "2026-11-29T03:59:11.123456Z", "type": "response", "auth": {"accessor": "hmac-sha256:ab"},
                         "request": {"id": "r1", "operation": "read", "path": "secret/data/app",
                                     "remote_address": "127.0.0.1", "client_token": "hmac-sha256:ef"},
                         "response": {"data": {}}})
NGINX_LINE = json.dumps({"time": "2026-11-29T04:00:00+00:00", "remote_addr": "127.0.0.1", "method": "GET",
                         "uri": "/api/x", "status": 200, "user_agent": "curl/8", "token_fp": "54184e36b1594956",
                         "request_id": "abc", "bytes": 5})


@pytest.mark.parametrize("path", [BATCH, ENTRY])
def test_sniff_claims_fixtures(path: Path) -> None:
    assert FMT.sniff(FileSource(str(path)).head()) >= 0.5


def test_sniff_rejects_other_vendors() -> None:
    assert FMT.sniff([json.dumps(entry())] * 2) >= 0.5
    for other in (OKTA_LINE, VAULT_LINE, NGINX_LINE):
        assert FMT.sniff([other, other]) < 0.5, other
    assert FMT.sniff(["[", OKTA_LINE + ","]) < 0.5
    assert FMT.sniff([]) == 0.0
