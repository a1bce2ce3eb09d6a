"""Salesforce Event Monitoring parsers (`connectors/salesforce.py`: `salesforce-eventlogfile`, `salesforce-eventlog-json`).

Expected values are written from the raw records of the fixtures (quoted in comments), not copied from parser
output. Fixture provenance: tests/fixtures/salesforce/SOURCES.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import salesforce

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"
APPOMNI = FIX / "appomni_salesforce_eventlog_A.jsonl"
PANTHER = FIX / "panther_salesforce_eventlog_A.jsonl"
ELASTIC_LOGIN = FIX / "elastic_salesforce_test-login-eventlogfile.log"
ELASTIC_SAT = FIX / "elastic_salesforce_test-setupaudittrail.log"
LOGIN_CSV = FIX / "hand_eventlogfile_login.csv"
CONCAT_CSV = FIX / "hand_eventlogfile_drift_concat.csv"
LH_QUERY = FIX / "hand_loginhistory_query.json"
MIXED = FIX / "hand_mixed.jsonl"
CSV_FMT = "salesforce-eventlogfile"
JSON_FMT = "salesforce-eventlog-json"
FAKE_TOKEN = "00D5j000000AcMe!AQ8AQFakeTokenForTestsOnly0123456789abcdef"  # in CONCAT_CSV line 13


def run(path: Path, fmt: str = JSON_FMT) -> tuple[dict[int, Event], list[Problem]]:
    parse = formats.get(fmt).parse  # type: ignore[union-attr]
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            assert r.line not in events
            events[r.line] = r.event
        else:
            assert isinstance(r, Problem)
            problems.append(r)
    return events, problems


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def outside_raw(ev: Event) -> str:
    fields = dataclasses.asdict(ev)
    fields.pop("raw")
    return json.dumps(fields, default=str)


# ------------------------------------------------------------------------------------------------ registry


def test_both_formats_registered() -> None:
    csv_fmt, json_fmt = formats.get(CSV_FMT), formats.get(JSON_FMT)
    assert csv_fmt is not None and csv_fmt.vendor == "salesforce" and csv_fmt.splittable is None
    assert json_fmt is not None and json_fmt.vendor == "salesforce" and json_fmt.splittable is not None


@pytest.mark.parametrize("path", [APPOMNI, PANTHER, ELASTIC_LOGIN, ELASTIC_SAT, LH_QUERY, MIXED], ids=lambda p: p.name)
def test_json_sniff_claims_json_fixtures(path: Path) -> None:
    head = FileSource(str(path)).head()
    assert salesforce.sniff_json(head) >= 0.5
    assert salesforce.sniff_csv(head) < 0.5


@pytest.mark.parametrize("path", [LOGIN_CSV, CONCAT_CSV], ids=lambda p: p.name)
def test_csv_sniff_claims_csv_fixtures(path: Path) -> None:
    head = FileSource(str(path)).head()
    assert salesforce.sniff_csv(head) >= 0.5
    assert salesforce.sniff_json(head) < 0.5


OTHER_VENDOR_LINES = {
    "okta": '{"uuid":"a1","published":"2025-08-17T11:15:42.000Z","eventType":"user.session.start",'
            '"actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},"outcome":{"result":"SUCCESS"}}',
    "vault": '{"time":"2025-08-17T11:15:42.123Z","type":"request","auth":{"client_token":"hmac-sha256:ab",'
             '"accessor":"hmac-sha256:cd"},"request":{"id":"r1","operation":"read","path":"secret/data/x"}}',
    "nginx-json": '{"time_local":"17/Aug/2025:11:15:42 +0000","remote_addr":"203.0.113.9","request":"GET / HTTP/1.1",'
                  '"status":200,"body_bytes_sent":12,"http_user_agent":"curl/8"}',
    "cloudtrail": '{"eventVersion":"1.08","eventTime":"2025-08-17T11:15:42Z","eventType":"AwsApiCall",'
                  '"eventName":"GetSecretValue","requestID":"x","userIdentity":{"type":"IAMUser"}}',
    "nginx-combined": '203.0.113.9 - - [17/Aug/2025:11:15:42 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"',
    "plain-csv": "time,user,ip\n2025-08-17T11:15:42Z,alice,203.0.113.9",
}


@pytest.mark.parametrize("name", sorted(OTHER_VENDOR_LINES))
def test_sniff_rejects_other_vendors(name: str) -> None:
    lines = OTHER_VENDOR_LINES[name].splitlines()
    assert salesforce.sniff_json(lines) < 0.5
    assert salesforce.sniff_csv(lines) < 0.5


# ------------------------------------------------------------------------------------------------ EventLogFile CSV


def test_login_csv_rows() -> None:
    events, problems = run(LOGIN_CSV, CSV_FMT)
    assert sorted(events) == [2, 3, 4]
    ok = events[2]
    # "Login","20250812093107.118",... "TIMESTAMP_DERIVED"="2025-08-12T09:31:07.118Z", "USER_ID_DERIVED"="0055j000003DrFtAAK",
    # "CLIENT_IP"="203.0.113.45", "BROWSER_TYPE"="python-requests/2.32.4", "LOGIN_KEY"="Qm7Tz2VbX9kLp4Wr", "SESSION_KEY"=""
    assert ok.time == "2025-08-12T09:31:07.118Z"
    assert (ok.action, ok.outcome, ok.vendor_type) == ("login", "success", "Login")
    assert ok.principal == "0055j000003DrFtAAK"
    assert ok.src_ip == "203.0.113.45" and ok.user_agent == "python-requests/2.32.4"
    assert ok.resource == "/services/oauth2/token"
    assert ok.session_id == "Qm7Tz2VbX9kLp4Wr" and "session_key" not in ok.extra
    assert ok.extra["user_name"] == "drift.integration@acme-demo.example"
    assert ok.vendor_id == "Login:4ZrPq1xYbN0aK7cD2eF3g-:2025-08-12T09:31:07.118Z"
    assert ok.credential is None and ok.subject is None  # LOGIN_KEY/SESSION_KEY are never credential keys
    assert isinstance(ok.raw, dict) and ok.raw["EVENT_TYPE"] == "Login"
    # "LOGIN_STATUS"="LOGIN_OAUTH_INVALID_TOKEN", "CLIENT_IP"="198.51.100.77"
    bad = events[3]
    assert (bad.action, bad.outcome, bad.src_ip) == ("auth.fail", "failure", "198.51.100.77")
    # empty TIMESTAMP_DERIVED → TIMESTAMP "20250812100000.000"; CLIENT_IP "Salesforce.com IP" → SOURCE_IP "192.0.2.10"
    internal = events[4]
    assert internal.time == "2025-08-12T10:00:00.000Z"
    assert internal.src_ip == "192.0.2.10" and internal.extra["client_ip"] == "Salesforce.com IP"
    assert [(p.line, p.kind) for p in problems] == [(1, "skipped"), (5, "skipped"), (6, "malformed"), (7, "malformed")]


def test_concatenated_csv_files_of_several_event_types() -> None:
    events, problems = run(CONCAT_CSV, CSV_FMT)
    assert [p.line for p in problems] == [1, 5, 8, 12, 14, 16, 18]
    assert all(p.kind == "skipped" and p.reason.startswith("header") for p in problems)
    assert sorted(events) == [2, 3, 4, 6, 9, 10, 11, 13, 15, 17, 19]
    # RestApi: "URI"="/services/data/v58.0/sobjects/", "METHOD"="GET", "STATUS_CODE"="200", "RESPONSE_SIZE"="48213",
    # "CONNECTED_APP_ID"="0H45j000000DrFt" (15 characters → 18: "0H45j" has H at 1 → C; "3DrFt" has D,F → K)
    rest = events[2]
    assert (rest.action, rest.method, rest.status, rest.bytes) == ("api.call", "GET", 200, 48213)
    assert rest.resource == "/services/data/v58.0/sobjects/"
    assert rest.client == "0H45j000000DrFtCAK"
    assert rest.session_id == "Qm7Tz2VbX9kLp4Wr" and rest.extra["session_key"] == "hT3kV8nQ1wZ5xC7b"
    # "/services/data/v58.0/limits/" "REQUEST_STATUS"="A" "STATUS_CODE"="401" → refused
    assert (events[4].action, events[4].outcome, events[4].status) == ("auth.fail", "failure", 401)
    # UniqueQuery: QUERY_IDENTIFIER spans physical lines 6-7; the row is numbered by its first line
    uq = events[6]
    assert uq.action == "api.call" and uq.vendor_type == "UniqueQuery"
    assert uq.resource == ("SELECT Id, Username, Email, LastLoginDate\n"
                           "FROM User WHERE IsActive = true ORDER BY LastLoginDate DESC NULLS LAST LIMIT 20")
    # BulkApi2 "OPERATION_TYPE"="query" "ENTITY_TYPE"="Case" "ROWS_PROCESSED"="10000"; the job "Deleted" later
    assert (events[9].action, events[9].resource, events[9].rows) == ("data.export", "Case", 10000)
    assert events[10].extra["job_status"] == "Deleted" and events[10].extra["job_id"] == "7505j00000DrFt1"
    # BulkApi2 "OPERATION_TYPE"="insert": an ingest job writes, it is not an export
    assert events[11].action == "api.call"
    # LoginAs: "USER_ID"="0055j000001MrLe" "DELEGATED_USER_ID"="0055j000000AdMn"
    login_as = events[15]
    assert (login_as.action, login_as.principal) == ("login", "0055j000001MrLeAAK")
    assert login_as.extra["login_as"] is True and login_as.extra["login_as_by"] == "0055j000000AdMnAAK"
    assert login_as.extra["login_as_by_name"] == "admin@acme-demo.example"
    assert events[17].action == "logout"
    # ApiTotalUsage: "HTTP_METHOD"="GET" "STATUS_CODE"="200" "ENTITY_NAME"="Account" "CONNECTED_APP_NAME"="Drift"
    usage = events[19]
    assert (usage.action, usage.method, usage.status, usage.resource) == ("api.call", "GET", 200, "Account")
    assert usage.extra["connected_app_name"] == "Drift" and usage.extra["api_family"] == "REST"


def test_raw_token_in_a_field_is_fingerprinted_never_copied() -> None:
    events, _ = run(CONCAT_CSV, CSV_FMT)
    ev = events[13]  # "URI"="/secur/frontdoor.jsp?sid=00D5j000000AcMe!AQ8AQ…"
    assert FAKE_TOKEN in json.dumps(ev.raw)  # ingest redacts raw
    assert FAKE_TOKEN not in outside_raw(ev)
    assert ev.resource is not None and ev.resource.startswith("/secur/frontdoor.jsp?sid=")
    assert ev.credential is not None and ev.credential.kind == "access"
    assert any(k.startswith("sha256:") for k in ev.credential.keys)
    assert ev.credential.principal == "0055j000003DrFtAAK"
    for other in events.values():
        assert FAKE_TOKEN not in outside_raw(other)


def test_csv_bad_rows_and_rows_before_a_header(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv",
              '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","USER_ID"\n'
              '"Logout","20250817111542.000","R1","0055j000003DrFt"\n'
              '"Logout","","R2","0055j000003DrFt"\n'
              '"","20250817111542.000","R3","0055j000003DrFt"\n')
    events, problems = run(p, CSV_FMT)
    assert events[2].time == "2025-08-17T11:15:42.000Z" and events[2].principal == "0055j000003DrFtAAK"
    assert [(p.line, p.kind, p.reason) for p in problems] == [
        (1, "skipped", "header (4 columns)"),
        (3, "malformed", "Logout: no TIMESTAMP"),
        (4, "malformed", "no EVENT_TYPE: not an EventLogFile row"),
    ]
    q = write(tmp_path, "y.csv", '"Logout","20250817111542.000"\n"EVENT_TYPE","TIMESTAMP"\n"Logout","20250817111542.000"\n')
    events, problems = run(q, CSV_FMT)
    assert list(events) == [3]
    assert problems[0].line == 1 and problems[0].kind == "malformed" and "before any" in problems[0].reason


def test_login_history_csv_export(tmp_path: Path) -> None:
    # A `sf data query --result-format csv` export of LoginHistory: the header is the object's field names.
    p = write(tmp_path, "lh.csv", "Id,UserId,LoginTime,SourceIp,Status,Application,LoginType\n"
                                  "0Ya1,0055j000003DrFtAAK,2025-08-12T09:31:07.000+0000,203.0.113.45,Success,Drift,"
                                  "Remote Access 2.0\n")
    assert salesforce.sniff_csv(FileSource(str(p)).head()) >= 0.5
    events, problems = run(p, CSV_FMT)
    ev = events[2]
    assert (ev.action, ev.time, ev.principal, ev.client, ev.src_ip) == (
        "login", "2025-08-12T09:31:07.000Z", "0055j000003DrFtAAK", "Drift", "203.0.113.45")
    assert ev.vendor_id == "LoginHistory:0Ya1"


# ------------------------------------------------------------------------------------------------ JSON


def test_elastic_login_row_and_id_checksum() -> None:
    events, problems = run(ELASTIC_LOGIN)
    assert problems == []
    ev = events[1]
    # "TIMESTAMP_DERIVED":"2022-09-13T05:22:43.429Z","USER_ID_DERIVED":"0055j000000utlPAAQ","CLIENT_IP":"175.16.199.0",
    # "LOGIN_STATUS":"LOGIN_NO_ERROR","LOGIN_KEY":"NK2oPJrJze8tH+vC","REQUEST_ID":"4lGJ1R0ZSWVXwFl1cJIRH-","URI":"/index.jsp"
    assert (ev.time, ev.action, ev.outcome) == ("2022-09-13T05:22:43.429Z", "login", "success")
    assert ev.principal == "0055j000000utlPAAQ" and ev.src_ip == "175.16.199.0"
    assert ev.session_id == "NK2oPJrJze8tH+vC" and ev.resource == "/index.jsp"
    assert ev.user_agent is not None and ev.user_agent.startswith("Mozilla/5.0 (Windows NT 10.0")  # BROWSER_TYPE
    assert ev.extra["org_id"] == "00D5j000000VI3n" and ev.extra["user_name"] == "user@elastic.co"
    # Salesforce's own pair: "USER_ID":"0055j000000utlP" ↔ "USER_ID_DERIVED":"0055j000000utlPAAQ"
    assert salesforce.sfid18("0055j000000utlP") == "0055j000000utlPAAQ"
    assert salesforce.sfid18("not-an-id") == "not-an-id"


def test_elastic_setup_audit_trail() -> None:
    events, problems = run(ELASTIC_SAT)
    assert problems == []
    ev = events[1]
    # "Action":"insertConnectedApplication","CreatedById":"0055j000000utlPAAQ","CreatedDate":"2022-08-16T09:26:38.000+0000",
    # "Section":"Connected Apps","DelegateUser":"user1","Id":"0Ym5j000019nwonCAA"
    assert (ev.time, ev.action, ev.vendor_type) == ("2022-08-16T09:26:38.000Z", "admin.change", "insertConnectedApplication")
    assert ev.principal == "0055j000000utlPAAQ" and ev.resource == "Connected Apps"
    assert ev.extra["delegate_user"] == "user1" and ev.extra["created_by_context"] == "Einstein"
    assert ev.vendor_id == "SetupAuditTrail:0Ym5j000019nwonCAA"


def test_appomni_mixed_shapes() -> None:
    events, problems = run(APPOMNI)
    assert problems == [] and sorted(events) == list(range(1, 30))
    for ev in events.values():
        assert ev.vendor == "salesforce" and ev.action in ACTIONS and ev.outcome in OUTCOMES and ev.time.endswith("Z")
    # line 3: "EVENT_TYPE":"Login","LOGIN_STATUS":"LOGIN_OAUTH_NO_CONSUMER","CLIENT_IP":"Salesforce.com IP",
    # "SOURCE_IP":"198.51.100.1","TIMESTAMP":"20230315013819.200","TIMESTAMP_DERIVED":"2023-03-15T01:38:19.151Z"
    login = events[3]
    assert (login.action, login.outcome, login.src_ip) == ("auth.fail", "failure", "198.51.100.1")
    assert login.time == "2023-03-15T01:38:19.151Z"  # TIMESTAMP_DERIVED wins over TIMESTAMP
    # line 6: "EVENT_TYPE":"API","METHOD_NAME":"query_all","ENTITY_NAME":"Customer_Account__c","ROWS_PROCESSED":"100000",
    # "RESPONSE_SIZE":"296630","URI":"Api"
    api = events[6]
    assert (api.action, api.resource, api.rows, api.bytes) == ("api.call", "Customer_Account__c", 100000, 296630)
    assert api.extra["operation"] == "query_all" and api.extra["client_name"] == "vendor/integration_app"
    # line 1: "EVENT_TYPE":"AuraRequest","REQUEST_METHOD":"POST","URI":"/aura"
    assert (events[1].action, events[1].method, events[1].resource) == ("api.call", "POST", "/aura")
    # line 9: channel "/event/ApiEventStream", payload "EventDate":"2023-03-21T10:04:39.747+0000","Query":"Select name, …",
    # "RowsProcessed":1000364.0,"UserId":"000000000000123AbC","UserAgent":"python-requests/2.28.2","LoginKey":"9870000000012300"
    rt = events[9]
    assert (rt.vendor_type, rt.action, rt.time) == ("ApiEvent", "api.call", "2023-03-21T10:04:39.747Z")
    assert rt.resource is not None and rt.resource.startswith("Select name, record, status__c, from Account")
    assert (rt.rows, rt.principal, rt.user_agent) == (1000364, "000000000000123AbC", "python-requests/2.28.2")
    assert rt.session_id == "9870000000012300" and rt.extra["record"] == "RealTimeEvent"
    # line 10: attributes.type "BulkApiResultEventStore" → data.export
    assert (events[10].vendor_type, events[10].action) == ("BulkApiResultEventStore", "data.export")
    # line 11: IdentityVerificationEvent "Status":"FailedInvalidCode","City":"Lexington","Country":"United States",
    # "SourceIp":"2001db8fffffffffffffffffffffffa" (sanitised, not an address → no src_ip)
    iv = events[11]
    assert (iv.action, iv.outcome, iv.city, iv.country, iv.src_ip) == (
        "auth.fail", "failure", "Lexington", "United States", None)
    assert events[12].action == "other"  # "Status":"InProgress"
    # line 14: LoginEventStream "Status":"Password Lockout","SourceIp":"198.51.100.2"
    assert (events[14].action, events[14].outcome, events[14].src_ip) == ("auth.fail", "failure", "198.51.100.2")
    assert events[15].action == "logout"  # LogoutEventStream
    # line 16: ReportEvent "Operation":"ReportExported","RowsProcessed":20680.0; line 17 "ReportRunFromLightning"
    assert (events[16].action, events[16].rows) == ("data.export", 20680)
    assert events[17].action == "api.call"
    # line 25: snake_case SAT "action":"updatedgroup","sfdc_created_date":"2023-03-07T13:18:30+00:00",
    # "sfdc_created_by_id":"000000000000123AbC","sfdc_created_by_username":"alice@example.com","delegate_user":"john@example.com"
    sat = events[25]
    assert (sat.action, sat.vendor_type, sat.time) == ("admin.change", "updatedgroup", "2023-03-07T13:18:30Z")
    assert sat.principal == "000000000000123AbC" and sat.resource == "Groups"
    assert sat.extra["user_name"] == "alice@example.com" and sat.extra["delegate_user"] == "john@example.com"
    assert all(events[n].action == "admin.change" for n in range(18, 30))


def test_panther_rows() -> None:
    events, problems = run(PANTHER)
    assert problems == [] and sorted(events) == list(range(1, 12))
    # line 1: "TIMESTAMP_DERIVED":"2023-05-04 21:36:47.569" (Panther form, no zone: UTC), "CLIENT_IP":"13.13.13.13",
    # "SOURCE_IP":"12.12.12.12","USER_ID_DERIVED":"0055f00000CyENtAAN"
    ev = events[1]
    assert (ev.time, ev.action, ev.principal) == ("2023-05-04T21:36:47.569Z", "login", "0055f00000CyENtAAN")
    assert ev.src_ip == "13.13.13.13" and ev.extra["source_ip"] == "12.12.12.12"
    # line 4: "EVENT_TYPE":"LoginAs","DELEGATED_USER_ID_DERIVED":"0054x000001L78aAAC","DELEGATED_USER_NAME":"admin.user@yourcompany.io"
    la = events[4]
    assert la.action == "login" and la.extra["login_as_by"] == "0054x000001L78aAAC"
    # line 6: "EVENT_TYPE":"ApiAnomalyEventStore" (a detection, not an access) → other; "SOURCE_IP":"45.67.89.123"
    assert (events[5].action, events[5].src_ip) == ("other", "45.67.89.123")
    # line 8: "EVENT_TYPE":"ApiConnectedApp","CONNECTED_APP_ID":"0H05f000000XzCpDDM","CONNECTED_APP_NAME":"ApprovedIntegrationService"
    assert events[8].client == "0H05f000000XzCpDDM"
    assert events[8].extra["connected_app_name"] == "ApprovedIntegrationService"


def test_login_history_query_response_document() -> None:
    events, problems = run(LH_QUERY)
    assert problems == [] and sorted(events) == [1, 2]  # records numbered 1, 2 inside the response
    # "Status":"Success","Application":"Drift","LoginTime":"2025-08-12T09:31:07.000+0000","SourceIp":"203.0.113.45"
    ok, bad = events[1], events[2]
    assert (ok.action, ok.time, ok.client, ok.src_ip) == ("login", "2025-08-12T09:31:07.000Z", "Drift", "203.0.113.45")
    assert ok.extra["login_type"] == "Remote Access 2.0" and ok.vendor_id == "LoginHistory:0Ya5j00000DrFt1CAF"
    assert (bad.action, bad.outcome) == ("auth.fail", "failure")  # "Status":"Invalid Password"


def test_mixed_json_lines_and_bad_lines() -> None:
    events, problems = run(MIXED)
    # line 1: camelCase EventLogFile row "eventType":"RestApi","uri":"/services/data/v58.0/sobjects/Case/describe/",
    # "statusCode":"200","connectedAppId":"0H45j000000DrFt","loginKey":"Qm7Tz2VbX9kLp4Wr"
    rest = events[1]
    assert (rest.action, rest.resource, rest.status) == ("api.call", "/services/data/v58.0/sobjects/Case/describe/", 200)
    assert (rest.client, rest.session_id, rest.principal) == ("0H45j000000DrFtCAK", "Qm7Tz2VbX9kLp4Wr", "0055j000003DrFtAAK")
    assert events[2].vendor_type == "LoginHistory" and events[2].action == "login"  # no attributes: by LoginTime
    # line 3: "CreatedBy":{"Username":"admin@acme-demo.example"}, "Action":"connectedAppBlocked"
    assert events[3].extra["user_name"] == "admin@acme-demo.example" and events[3].action == "admin.change"
    assert [(p.line, p.kind) for p in problems] == [(4, "skipped"), (5, "malformed"), (6, "malformed"), (7, "malformed")]


def test_query_response_on_one_line_and_array(tmp_path: Path) -> None:
    rec = {"attributes": {"type": "LoginHistory", "url": "/services/data/v58.0/sobjects/LoginHistory/0Ya1"},
           "Id": "0Ya1", "UserId": "0055j000003DrFtAAK", "LoginTime": "2025-08-12T09:31:07.000+0000",
           "SourceIp": "203.0.113.45", "Status": "Success"}
    one_line = write(tmp_path, "a.json", json.dumps({"totalSize": 2, "done": True, "records": [rec, rec]}) + "\n")
    events = [r for r in salesforce.parse_json(FileSource(str(one_line))) if isinstance(r, Parsed)]
    assert [r.line for r in events] == [1, 1]
    array = write(tmp_path, "b.json", json.dumps([rec, rec, 3], indent=2))
    out = list(salesforce.parse_json(FileSource(str(array))))
    assert [type(r).__name__ for r in out] == ["Parsed", "Parsed", "Problem"] and out[2].line == 3
    sf_cli = write(tmp_path, "c.json", json.dumps({"status": 0, "result": {"totalSize": 1, "done": True,
                                                                              "records": [rec]}}, indent=2))
    out = list(salesforce.parse_json(FileSource(str(sf_cli))))
    assert len(out) == 1 and isinstance(out[0], Parsed) and out[0].event.action == "login"
    broken = write(tmp_path, "d.json", json.dumps([rec, rec], indent=2)[:-30])
    out = list(salesforce.parse_json(FileSource(str(broken))))
    assert isinstance(out[0], Parsed) and isinstance(out[-1], Problem) and out[-1].kind == "malformed"


# ------------------------------------------------------------------------------------------------ mappings

ELF_ACTIONS = {
    ("Login", "LOGIN_NO_ERROR"): "login",
    ("Login", "LOGIN_ERROR_INVALID_PASSWORD"): "auth.fail",
    ("LoginAs", ""): "login",
    ("Logout", ""): "logout",
    ("API", ""): "api.call",
    ("RestApi", ""): "api.call",
    ("URI", ""): "api.call",
    ("UniqueQuery", ""): "api.call",
    ("ApiTotalUsage", ""): "api.call",
    ("BulkApi", ""): "data.export",
    ("BulkApi2", ""): "data.export",
    ("ReportExport", ""): "data.export",
    ("ApexCallout", ""): "other",
}


@pytest.mark.parametrize("key", sorted(ELF_ACTIONS), ids=lambda k: "-".join(x for x in k if x))
def test_elf_event_type_to_action(key: tuple[str, str], tmp_path: Path) -> None:
    event_type, status = key
    row = {"EVENT_TYPE": event_type, "TIMESTAMP": "20250817111542.000", "REQUEST_ID": "R", "USER_ID": "0055j000003DrFt"}
    if status:
        row["LOGIN_STATUS"] = status
    p = write(tmp_path, "r.jsonl", json.dumps(row) + "\n")
    events, problems = run(p)
    assert problems == [] and events[1].action == ELF_ACTIONS[key]
    assert events[1].time == "2025-08-17T11:15:42.000Z"


RT_ACTIONS = {
    ("LoginEventStream", "Success", ""): "login",
    ("LoginEvent", "Invalid Password", ""): "auth.fail",
    ("LogoutEventStream", "", ""): "logout",
    ("ApiEventStream", "", ""): "api.call",
    ("UriEvent", "", ""): "api.call",
    ("BulkApiResultEventStore", "", ""): "data.export",
    ("ReportEventStream", "", "ReportExported"): "data.export",
    ("ReportEventStream", "", "ReportRunFromLightning"): "api.call",
    ("IdentityVerificationEvent", "FailedTooManyAttempts", ""): "auth.fail",
    ("ApiAnomalyEventStore", "", ""): "other",
}


@pytest.mark.parametrize("key", sorted(RT_ACTIONS), ids=lambda k: "-".join(x for x in k if x))
def test_real_time_type_to_action(key: tuple[str, str, str], tmp_path: Path) -> None:
    type_name, status, operation = key
    payload = {"EventDate": "2025-08-17T11:15:42.000+0000", "EventIdentifier": "e1", "UserId": "0055j000003DrFtAAK",
               "attributes": {"type": type_name, "url": f"/services/data/v58.0/sobjects/{type_name}/x"}}
    if status:
        payload["Status"] = status
    if operation:
        payload["Operation"] = operation
    p = write(tmp_path, "r.jsonl", json.dumps(payload) + "\n")
    events, problems = run(p)
    assert problems == [] and events[1].action == RT_ACTIONS[key]
    assert events[1].time == "2025-08-17T11:15:42.000Z" and events[1].vendor_type == type_name
