"""Entra ID parsers (`connectors/entra.py`, formats `entra-signin`, `entra-audit`, `entra-ual`).

Expected values are written from the raw records of the fixtures (quoted in comments), not copied from parser
output. Fixture provenance: tests/fixtures/entra/SOURCES.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import entra

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "entra"
EL_SIGNIN = FIX / "elastic_azure_test-signinlogs-raw.log"
EL_AUDIT = FIX / "elastic_azure_test-auditlogs-raw.log"
PANTHER = FIX / "panther_entra_signin_A.jsonl"
APPOMNI = FIX / "appomni_entra_signin_A.jsonl"
GRAPH_SIGNINS = FIX / "graph_signins_array.json"
GRAPH_AUDITS = FIX / "graph_directoryaudits_page.json"
EVENTHUB = FIX / "eventhub_records.jsonl"
CSV = FIX / "portal_signins.csv"


def run(path: Path) -> tuple[list[tuple[int, Event]], list[Problem]]:
    events: list[tuple[int, Event]] = []
    problems: list[Problem] = []
    for r in entra.parse(FileSource(str(path))):
        if isinstance(r, Parsed):
            events.append((r.line, r.event))
        else:
            assert isinstance(r, Problem)
            problems.append(r)
    return events, problems


def by_line(path: Path) -> dict[int, Event]:
    events, _ = run(path)
    out: dict[int, Event] = {}
    for line, ev in events:
        assert line not in out
        out[line] = ev
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def only_fields(ev: Event) -> str:
    fields = dataclasses.asdict(ev)
    fields.pop("raw")
    return json.dumps(fields, default=str)


# ------------------------------------------------------------------------------------------------ registry


def test_registered() -> None:
    for name in ("entra-signin", "entra-audit", "entra-ual"):
        fmt = formats.get(name)
        assert fmt is not None and fmt.vendor == "entra"


def test_every_event_is_canonical() -> None:
    for path in (EL_SIGNIN, EL_AUDIT, PANTHER, APPOMNI, GRAPH_SIGNINS, GRAPH_AUDITS, EVENTHUB, CSV):
        events, _ = run(path)
        assert events
        for _, ev in events:
            assert ev.vendor == "entra"
            assert ev.action in ACTIONS and ev.outcome in OUTCOMES
            assert ev.time.endswith("Z")
            for ref in (ev.credential, ev.subject):
                if ref is not None:
                    assert all(k.startswith("entra-key:") for k in ref.keys)


# ------------------------------------------------------------------------------------------------ sign-ins


def test_elastic_diagnostic_signins_every_category() -> None:
    ev = by_line(EL_SIGNIN)
    assert sorted(ev) == [1, 2, 3, 4, 5]
    # line 1: "category":"SignInLogs", "createdDateTime":"2019-10-18T04:45:48.0729893-05:00",
    # "userPrincipalName":"test@elastic.co", "ipAddress":"81.2.69.144", "status":{"errorCode":50140,...},
    # "location":{"city":"Champs-Sur-Marne","countryOrRegion":"FR",...}, "appId":"8a4de8b5-095c-47d0-a96f-a75130c61d53"
    e = ev[1]
    assert e.time == "2019-10-18T09:45:48.0729893Z"
    assert (e.vendor_type, e.action, e.outcome) == ("SignInLogs", "auth.fail", "failure")
    assert e.principal == "test@elastic.co"
    assert e.client == "8a4de8b5-095c-47d0-a96f-a75130c61d53"
    assert (e.src_ip, e.country, e.city) == ("81.2.69.144", "FR", "Champs-Sur-Marne")
    assert e.vendor_id == "8a4de8b5-095c-47d0-a96f-a75130c61d53"  # properties.id (a placeholder upstream)
    assert e.extra["error_code"] == "50140"
    assert e.credential is None
    assert [ev[n].vendor_type for n in (2, 3, 4, 5)] == [
        "NonInteractiveUserSignInLogs",
        "ServicePrincipalSignInLogs",
        "MicrosoftServicePrincipalSignInLogs",
        "ManagedIdentitySignInLogs",
    ]
    # lines 2-5: "userPrincipalName":"c3813493-bf92-5123-2717-8a8b2979c38b"
    assert ev[2].principal == "c3813493-bf92-5123-2717-8a8b2979c38b"


def test_panther_service_principal_signin_names_its_key() -> None:
    ev = by_line(PANTHER)
    # line 29: "category":"ServicePrincipalSignInLogs", "createdDateTime":"2023-07-27 13:59:53.691680300",
    # "appId":"3b245ca3-dcce-4a54-a070-49ad8de02963", "servicePrincipalName":"very-normal-service-principal",
    # "servicePrincipalCredentialKeyId":"2afc776a-4e79-4588-b2ad-f62c94d6bea8", "status":{"errorCode":0},
    # "ipAddress":"12.12.12.12", "resourceDisplayName":"Office 365 Management APIs",
    # "uniqueTokenIdentifier":"CXXXXXXXXXXXXXXXXXXXXX", "id":"55270060-d8fe-435e-9bf2-219a1d456b60"
    e = ev[29]
    assert e.time == "2023-07-27T13:59:53.691680300Z"
    assert (e.action, e.outcome) == ("login", "success")
    assert e.principal == "very-normal-service-principal"
    assert e.client == "3b245ca3-dcce-4a54-a070-49ad8de02963"
    assert e.src_ip == "12.12.12.12"
    assert e.resource == "Office 365 Management APIs"
    assert e.vendor_id == "55270060-d8fe-435e-9bf2-219a1d456b60"
    assert e.credential is not None
    assert e.credential.keys == ("entra-key:2afc776a-4e79-4588-b2ad-f62c94d6bea8",)
    assert e.credential.kind == "client-secret"  # no servicePrincipalCredentialThumbprint
    assert (e.credential.client, e.credential.principal) == (e.client, e.principal)
    # uniqueTokenIdentifier is kept as a fact, never as a key
    assert e.extra["unique_token_identifier"] == "CXXXXXXXXXXXXXXXXXXXXX"
    # line 16: the same shape failing, "status":{"errorCode":7000215}, no servicePrincipalCredentialKeyId
    assert (ev[16].action, ev[16].outcome, ev[16].credential) == ("auth.fail", "failure", None)
    assert ev[16].principal == "some-service-principal"


def test_panther_signins_geo_asn_and_fallbacks() -> None:
    ev = by_line(PANTHER)
    # line 7: "time":"2025-01-15 08:15:23.456" (no createdDateTime), "userPrincipalName":"boromir@lotr.com",
    # "ipAddress":"4.4.4.4", "status":{"errorCode":50053,...}, "location":{"city":"Unknown","countryOrRegion":"RU"},
    # "autonomousSystemNumber":"12345", "resourceDisplayName":"Microsoft Graph", no "id"
    e = ev[7]
    assert e.time == "2025-01-15T08:15:23.456Z"
    assert (e.action, e.principal, e.src_ip) == ("auth.fail", "boromir@lotr.com", "4.4.4.4")
    assert (e.country, e.city, e.asn) == ("RU", None, "12345")  # "Unknown" city is no city
    assert e.vendor_id is None
    # line 17: "autonomousSystemNumber":1234 (a number), "createdDateTime":"2023-07-21 05:03:52.160562400"
    assert ev[17].asn == "1234" and ev[17].time == "2023-07-21T05:03:52.160562400Z"
    # line 3: no status; top-level "resultType":"0" -> success; "appId":"29d9ed98-a469-4536-ade2-f981bc1d605e"
    assert (ev[3].action, ev[3].outcome, ev[3].principal) == ("login", "success", "aragorn@lotr.com")
    assert ev[3].client == "29d9ed98-a469-4536-ade2-f981bc1d605e"
    # line 4: "resultType":"Success" and properties "result":"success"
    assert (ev[4].action, ev[4].outcome) == ("login", "success")


def test_panther_mixed_file_reads_audits_too() -> None:
    ev = by_line(PANTHER)
    assert len(ev) == 29
    # line 27: "activityDisplayName":"Add service principal credentials", "activityDateTime":"2025-01-15T09:30:20.1234567Z",
    # initiatedBy.user.userPrincipalName "frodo@lotr.com", ipAddress "2.2.2.2", target "Production API Service";
    # KeyDescription newValue "\"Client Secret for API Access\"" (no KeyIdentifier)
    e = ev[27]
    assert (e.action, e.time) == ("token.issue", "2025-01-15T09:30:20.1234567Z")
    assert (e.principal, e.src_ip, e.resource) == ("frodo@lotr.com", "2.2.2.2", "Production API Service")
    assert e.subject is None
    # line 5: no activityDisplayName; "operationName":"User has elevated their access to ..."; top "result":"SUCCESS"
    assert ev[5].vendor_type.startswith("User has elevated their access")
    assert (ev[5].action, ev[5].outcome) == ("admin.change", "success")


def test_graph_signin_array_certificate_and_session() -> None:
    ev = by_line(GRAPH_SIGNINS)  # array items are numbered 1, 2, 3
    # item 1: "createdDateTime":"2025-08-17T11:15:42Z", "userPrincipalName":"AdeleV@contoso.com",
    # "appId":"de8bc8b5-d9f9-48b1-a8ad-b748da725064", "ipAddress":"203.0.113.45", "autonomousSystemNumber":64500,
    # "sessionId":"0f7cbd3e-5d6a-4d5b-8a43-6f0f7e7ac2a1", "signInEventTypes":["interactiveUser"], "status":{"errorCode":0}
    e = ev[1]
    assert (e.time, e.action, e.vendor_type) == ("2025-08-17T11:15:42Z", "login", "SignInLogs")
    assert (e.principal, e.client, e.asn) == ("AdeleV@contoso.com", "de8bc8b5-d9f9-48b1-a8ad-b748da725064", "64500")
    assert (e.country, e.city, e.user_agent) == ("US", "Redmond", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    assert e.session_id == "0f7cbd3e-5d6a-4d5b-8a43-6f0f7e7ac2a1"
    assert e.credential is None
    # item 2: "servicePrincipalCredentialKeyId":"7B1D5A7E-3C2B-4F6A-9D8E-1A2B3C4D5E6F",
    # "servicePrincipalCredentialThumbprint":"A1B2C3...", "userPrincipalName":"", "servicePrincipalName":"payments-batch"
    c = ev[2]
    assert c.vendor_type == "ServicePrincipalSignInLogs"
    assert c.principal == "payments-batch"
    assert c.credential is not None
    assert c.credential.keys == ("entra-key:7b1d5a7e-3c2b-4f6a-9d8e-1a2b3c4d5e6f",)  # GUIDs compare case-blind
    assert c.credential.kind == "certificate"
    # item 3: "errorCode":7000215 with key "2afc776a-..." and an empty thumbprint -> a client secret failing
    f = ev[3]
    assert (f.action, f.outcome) == ("auth.fail", "failure")
    assert f.credential is not None and f.credential.kind == "client-secret"
    assert f.credential.keys == ("entra-key:2afc776a-4e79-4588-b2ad-f62c94d6bea8",)
    assert f.extra["failure_reason"] == "Invalid client secret provided."


def test_eventhub_records_wrapper() -> None:
    events, problems = run(EVENTHUB)
    # line 1 holds two records; line 3 one AuditLogs record
    assert [(n, e.vendor_type) for n, e in events] == [
        (1, "ServicePrincipalSignInLogs"),
        (1, "ManagedIdentitySignInLogs"),
        (3, "Add service principal credentials"),
    ]
    sp, mi, audit = (e for _, e in events)
    # "servicePrincipalCredentialKeyId":"3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91" (the key the audit on line 3 adds)
    assert sp.credential is not None and sp.credential.keys == ("entra-key:3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91",)
    assert audit.subject is not None and audit.subject.keys == sp.credential.keys
    assert (sp.time, sp.country, sp.city) == ("2025-08-17T11:39:58.1234567Z", "RO", "Bucharest")
    # "servicePrincipalName":"vm-build-agent", "ipAddress":"" and no callerIpAddress
    assert (mi.principal, mi.src_ip, mi.action) == ("vm-build-agent", None, "login")
    assert [(p.line, p.kind) for p in problems] == [(2, "skipped"), (4, "malformed"), (5, "malformed"), (6, "malformed")]
    assert problems[1].reason == "SignInLogs: unreadable time 'not a time'"
    assert problems[2].reason.startswith("not JSON")
    assert "ProvisioningLogs" in problems[3].reason


def test_portal_csv() -> None:
    events, problems = run(CSV)
    ev = dict(events)
    # row on line 2: Date (UTC) 2025-08-17T11:15:42Z, Request ID 66ea54eb-..., Username AdeleV@contoso.com,
    # Application ID de8bc8b5-..., IP address 203.0.113.45, Location "Redmond, Washington, US", Status Success,
    # Sign-in error code 0, Session ID 0f7cbd3e-..., Autonomous system number 64500
    e = ev[2]
    assert (e.time, e.action, e.outcome) == ("2025-08-17T11:15:42Z", "login", "success")
    assert (e.principal, e.client, e.src_ip) == (
        "AdeleV@contoso.com",
        "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
        "203.0.113.45",
    )
    assert (e.country, e.city, e.asn) == ("US", "Redmond", "64500")
    assert e.vendor_id == "66ea54eb-6301-4ee5-be62-ff5a759b0100"
    assert e.session_id == "0f7cbd3e-5d6a-4d5b-8a43-6f0f7e7ac2a1"
    assert isinstance(e.raw, dict) and e.raw["Username"] == "AdeleV@contoso.com"
    # line 3: Status Failure, Sign-in error code 50126, Location "Bucharest, Bucuresti, RO", Resource Azure Resource Manager
    f = ev[3]
    assert (f.action, f.outcome, f.extra["error_code"]) == ("auth.fail", "failure", "50126")
    assert (f.country, f.city, f.resource) == ("RO", "Bucharest", "Azure Resource Manager")
    assert [(p.line, p.kind, p.reason) for p in problems] == [
        (1, "skipped", "CSV header"),
        (4, "skipped", "blank line"),
        (5, "malformed", "CSV row has 4 fields, the header 26"),
    ]


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ({"errorCode": 0}, ("login", "success")),
        ({"errorCode": "0"}, ("login", "success")),
        ({"errorCode": 50126}, ("auth.fail", "failure")),
        ({"errorCode": 50140}, ("auth.fail", "failure")),
        (None, ("login", "unknown")),
    ],
)
def test_signin_status_to_action(tmp_path: Path, status: dict | None, want: tuple[str, str]) -> None:
    rec = {"id": "s1", "createdDateTime": "2025-08-17T11:15:42Z", "userPrincipalName": "a@contoso.com",
           "appId": "app", "ipAddress": "192.0.2.1"}
    if status is not None:
        rec["status"] = status
    ev = by_line(write(tmp_path, "s.jsonl", json.dumps(rec) + "\n"))
    assert (ev[1].action, ev[1].outcome) == want


def test_graph_page_of_signins_and_single_object(tmp_path: Path) -> None:
    rec = {"id": "s1", "createdDateTime": "2025-08-17T11:15:42Z", "userPrincipalName": "a@contoso.com",
           "appId": "app", "ipAddress": "192.0.2.1", "status": {"errorCode": 0}}
    page = {"@odata.context": "https://graph.microsoft.com/beta/$metadata#auditLogs/signIns", "value": [rec, rec]}
    events, problems = run(write(tmp_path, "page.json", json.dumps(page, indent=2)))
    assert [n for n, _ in events] == [1, 2] and problems == []
    events, problems = run(write(tmp_path, "one.json", json.dumps(rec, indent=2)))
    assert [n for n, _ in events] == [1] and problems == []


def test_truncated_array_and_bad_lines(tmp_path: Path) -> None:
    text = GRAPH_SIGNINS.read_text(encoding="utf-8")
    cut = text[: text.index('"id": "c3f0e6b2')]  # the third item is cut off
    events, problems = run(write(tmp_path, "cut.json", cut))
    assert [n for n, _ in events] == [1, 2]
    assert [(p.line, p.kind) for p in problems] == [(3, "malformed")]
    assert problems[0].reason.startswith("JSON document truncated or broken after item 2")
    # (a file starting with `[` is an array document, so the JSON-lines shape starts with an object)
    lines = "\n".join(["{}", "[1, 2]", '{"foo": "bar"}', "not json", "   "]) + "\n"
    events, problems = run(write(tmp_path, "bad.jsonl", lines))
    assert events == []
    assert [(p.line, p.kind) for p in problems] == [
        (1, "malformed"), (2, "malformed"), (3, "malformed"), (4, "malformed"), (5, "skipped")
    ]
    assert problems[0].reason == "empty JSON object: not an Entra record"
    assert problems[1].reason.startswith("not a JSON object (list)")


def test_no_secret_in_any_field(tmp_path: Path) -> None:
    # A sign-in record never carries a secret; a pasted one in an odd field must not reach a column either.
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    rec = {"id": "s1", "createdDateTime": "2025-08-17T11:15:42Z", "userPrincipalName": "a@contoso.com",
           "appId": "app", "status": {"errorCode": 0}, "client_secret": secret}
    ev = by_line(write(tmp_path, "s.jsonl", json.dumps(rec) + "\n"))[1]
    assert secret not in only_fields(ev)


# ------------------------------------------------------------------------------------------------ audits


def test_elastic_audit_app_and_user_initiated() -> None:
    ev = by_line(EL_AUDIT)
    # line 1: "activityDateTime":"2019-10-18T15:30:51.0273716+00:00", "activityDisplayName":"Update device",
    # initiatedBy.app {"appId":"id","servicePrincipalName":"Core",...}, target "LAPTOP-12", "id":"Directory_ESQ"
    e = ev[1]
    assert (e.time, e.vendor_type, e.action, e.outcome) == (
        "2019-10-18T15:30:51.0273716Z", "Update device", "admin.change", "success"
    )
    assert (e.principal, e.client, e.resource, e.vendor_id) == ("Core", "id", "LAPTOP-12", "Directory_ESQ")
    # line 2: initiatedBy.user {"userPrincipalName":"UserName","ipAddress":"0.0.0.0"}; 0.0.0.0 is "no address"
    assert (ev[2].principal, ev[2].client, ev[2].src_ip) == ("UserName", None, None)
    assert ev[3].principal == "UserName"  # "displayName": null does not matter


def test_graph_audit_credential_changes() -> None:
    ev = by_line(GRAPH_AUDITS)
    # item 1: "Add service principal credentials", KeyDescription newValue
    # "[\"[KeyIdentifier=3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91,KeyType=Password,...]\"]",
    # initiatedBy.user "mallory@contoso.com" / "203.0.113.99", target ServicePrincipal "payments-batch"
    add = ev[1]
    assert (add.action, add.time) == ("token.issue", "2025-08-17T11:30:00.5Z")
    assert (add.principal, add.src_ip, add.resource) == ("mallory@contoso.com", "203.0.113.99", "payments-batch")
    assert add.user_agent == "python-requests/2.32.3"  # additionalDetails "User-Agent"
    assert add.subject is not None
    assert add.subject.keys == ("entra-key:3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91",)
    assert (add.subject.kind, add.subject.principal, add.subject.issued_at) == (
        "client-secret", "payments-batch", "2025-08-17T11:30:00.5Z"
    )
    # item 2: "Update application – Certificates and secrets management " whose KeyDescription drops password key
    # 2afc776a-... and keeps certificate 5d0b2e1c-...; AppId newValue "\"4c1f4a5e-8b7d-4e3c-9a2b-1c0d9e8f7a6b\""
    upd = ev[2]
    assert upd.action == "token.revoke"
    assert upd.subject is not None and upd.subject.keys == ("entra-key:2afc776a-4e79-4588-b2ad-f62c94d6bea8",)
    assert upd.subject.client == "4c1f4a5e-8b7d-4e3c-9a2b-1c0d9e8f7a6b"
    # item 3: "Remove service principal credentials", app-initiated (appId 14d82eec-..., displayName
    # "Microsoft Graph Command Line Tools", servicePrincipalName null), removes 3b6ce1f6-...
    rem = ev[3]
    assert rem.action == "token.revoke"
    assert (rem.principal, rem.client) == ("Microsoft Graph Command Line Tools", "14d82eec-204b-4c2f-b7e8-296a70dab67e")
    assert rem.subject is not None and rem.subject.keys == ("entra-key:3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91",)
    # item 4 "Consent to application" and item 5 a failed "Add delegated permission grant"
    assert (ev[4].action, ev[4].outcome, ev[4].resource) == ("admin.change", "success", "Totally Legit Mail Reader")
    assert (ev[5].action, ev[5].outcome) == ("admin.change", "failure")


def test_failed_credential_add_names_no_subject(tmp_path: Path) -> None:
    page = json.loads(GRAPH_AUDITS.read_text(encoding="utf-8"))
    rec = page["value"][0] | {"result": "failure"}
    ev = by_line(write(tmp_path, "a.jsonl", json.dumps(rec) + "\n"))[1]
    assert (ev.action, ev.outcome, ev.subject) == ("token.issue", "failure", None)
    assert ev.extra["credential_keys_not_changed"] == ["entra-key:3b6ce1f6-4a7c-4e2e-9a1b-0c5d8e7f6a91"]


@pytest.mark.parametrize(
    ("activity", "action"),
    [
        ("Add service principal credentials", "token.issue"),
        ("Update application – Certificates and secrets management ", "token.issue"),
        ("Update application - Certificates and secrets management", "token.issue"),
        ("Update Application-Certificates and secrets management", "token.issue"),
        ("Remove service principal credentials", "token.revoke"),
        ("Remove service principal credentials.", "token.revoke"),  # UAL spelling
        ("Consent to application", "admin.change"),
        ("Add OAuth2PermissionGrant", "admin.change"),
        ("Add delegated permission grant", "admin.change"),
        ("Add app role assignment to service principal", "admin.change"),
        ("Update device", "admin.change"),
    ],
)
def test_audit_activity_to_action(activity: str, action: str) -> None:
    assert entra.audit_action(activity) == action


# ------------------------------------------------------------------------------------------------ unified audit log


def test_ual_records() -> None:
    ev = by_line(APPOMNI)
    assert len(ev) == 11
    # line 3: "CreationTime":"2024-05-01T17:24:06", "Id":"0e523898-a3ab-4ba8-9c33-a6cc38050b03",
    # "Operation":"UserLoggedIn", "Workload":"AzureActiveDirectory", "ClientIP":"198.51.100.1",
    # "UserId":"example@test.onmicrosoft.comm", "ApplicationId":"00000002-0000-0ff1-ce00-000000000000"
    e = ev[3]
    assert (e.time, e.action, e.outcome) == ("2024-05-01T17:24:06Z", "login", "success")
    assert (e.principal, e.src_ip) == ("example@test.onmicrosoft.comm", "198.51.100.1")
    assert e.client == "00000002-0000-0ff1-ce00-000000000000"
    assert e.vendor_id == "0e523898-a3ab-4ba8-9c33-a6cc38050b03"
    # line 2: "Operation":"UserLoginFailed" with "ResultStatus":"Success" and "UserId":"Not Available";
    # "ErrorNumber":"50074"
    f = ev[2]
    assert (f.action, f.outcome, f.principal) == ("auth.fail", "failure", None)
    assert f.extra["error_number"] == "50074"
    assert f.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/120.0"
    # line 1: Teams "MessageDeleted" with "AppAccessContext":{"UniqueTokenId":"XeDaLWgRe1rsdtbkm15SAw"}
    t = ev[1]
    assert (t.action, t.principal) == ("other", "example@test.onmicrosoft.com")
    assert t.extra["unique_token_identifier"] == "XeDaLWgRe1rsdtbkm15SAw"
    # line 4: "Operation":"Add member to group.", "ResultStatus":"Success"
    assert (ev[4].action, ev[4].outcome, ev[4].vendor_type) == ("admin.change", "success", "Add member to group.")


# ------------------------------------------------------------------------------------------------ sniff

OKTA_LINE = (
    '{"actor":{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice"},'
    '"client":{"ipAddress":"198.51.100.7","userAgent":{"rawUserAgent":"curl/8"}},"authenticationContext":{},'
    '"displayMessage":"User login to Okta","eventType":"user.session.start","outcome":{"result":"SUCCESS"},'
    '"published":"2024-05-01T12:00:00.000Z","uuid":"a1b2c3d4-0000-11ef-0000-000000000000","version":"0"}'
)
VAULT_LINE = (
    '{"time":"2024-05-01T12:00:00.123456789Z","type":"request","auth":{"client_token":"hmac-sha256:ab12",'
    '"accessor":"hmac-sha256:cd34","display_name":"token","policies":["root"],"token_type":"service"},'
    '"request":{"id":"9f3c","operation":"read","path":"secret/data/app","remote_address":"10.0.0.5"}}'
)
NGINX_LINE = (
    '{"time":"2024-05-01T12:00:00+00:00","remote_addr":"203.0.113.7","xff":"-","method":"GET",'
    '"uri":"/api/v1/users?limit=1","status":200,"bytes":512,"rt":0.012,"ua":"curl/8.5.0",'
    '"request_id":"7d1f0c","upstream":"10.0.0.2:8080","urt":"0.011"}'
)
NGINX_TEXT = '127.0.0.1 - - [17/Aug/2025:11:15:42 +0000] "GET / HTTP/1.1" 200 5'
SNIFFS = (entra.sniff_signin, entra.sniff_audit, entra.sniff_ual)


def head(path: Path) -> list[str]:
    return FileSource(str(path)).head()


def test_sniff_claims_each_shape() -> None:
    assert entra.sniff_signin(head(EL_SIGNIN)) >= 0.9
    assert entra.sniff_signin(head(GRAPH_SIGNINS)) >= 0.5  # pretty-printed array: keys only
    assert entra.sniff_signin(head(CSV)) >= 0.9
    assert entra.sniff_signin(head(EVENTHUB)) >= 0.9
    assert entra.sniff_audit(head(EL_AUDIT)) >= 0.9
    assert entra.sniff_audit(head(GRAPH_AUDITS)) >= 0.5
    assert entra.sniff_ual(head(APPOMNI)) >= 0.5
    # a mixed file belongs to entra-signin; entra-audit stays below the detection threshold
    assert entra.sniff_signin(head(PANTHER)) >= 0.9 and entra.sniff_audit(head(PANTHER)) < 0.5
    # each format rejects the other shapes
    assert entra.sniff_audit(head(EL_SIGNIN)) < 0.5 and entra.sniff_ual(head(EL_SIGNIN)) < 0.5
    assert entra.sniff_signin(head(EL_AUDIT)) < 0.5 and entra.sniff_ual(head(EL_AUDIT)) < 0.5
    assert entra.sniff_signin(head(APPOMNI)) < 0.5 and entra.sniff_audit(head(APPOMNI)) < 0.5


@pytest.mark.parametrize("lines", [[OKTA_LINE], [VAULT_LINE], [NGINX_LINE], [NGINX_TEXT], [OKTA_LINE, NGINX_LINE], []])
def test_sniff_rejects_other_vendors(lines: list[str]) -> None:
    for sniff in SNIFFS:
        assert sniff(lines) < 0.5
        pretty = json.dumps(json.loads(lines[0]), indent=2).splitlines() if lines and lines[0].startswith("{") else []
        assert sniff(pretty) < 0.5
