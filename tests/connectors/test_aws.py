"""AWS parsers (`connectors/aws.py`, formats `aws-cloudtrail` and `aws-apigateway`).

Expected values are written from the raw JSON of the fixtures (quoted in comments), not copied from parser
output. Fixture provenance: tests/fixtures/aws/SOURCES.md.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.pipeline import ChunkSource
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.sources import FileSource
from connectors import aws

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "aws"
ASSUME = FIX / "elastic_cloudtrail_test-assume-role-json.log"
BATCH = FIX / "elastic_cloudtrail_test-batch-get-secret-value-json.log"
CONSOLE = FIX / "elastic_cloudtrail_test-console-login-json.log"
PANTHER = FIX / "panther_aws_cloudtrail_A.jsonl"
RECORDS = FIX / "handmade_cloudtrail_records.json"
APIGW = FIX / "elastic_apigateway_test-apigateway-rest.log"
APIGW_HAND = FIX / "handmade_apigateway.jsonl"
CLOUDTRAIL_FILES = [ASSUME, BATCH, CONSOLE, PANTHER, RECORDS]


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def run(parse, path: Path) -> tuple[dict[int, Event], list[Problem]]:  # type: ignore[no-untyped-def]
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


def trail(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    return run(aws.parse_cloudtrail, path)


def gateway(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    return run(aws.parse_apigateway, path)


def record(**fields: object) -> dict:
    """A minimal CloudTrail record (shape of the Elastic samples) with `fields` overriding it."""
    rec: dict = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                         "accountId": "111122223333", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "alice"},
        "eventTime": "2024-01-02T03:04:05Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "requestParameters": None,
        "responseElements": None,
        "eventID": "00000000-0000-0000-0000-000000000001",
    }
    rec.update(fields)
    return rec


def one(rec: dict, tmp_path: Path) -> Event:
    p = tmp_path / "one.jsonl"
    p.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    events, problems = trail(p)
    assert problems == []
    return events[1]


def outside_raw(ev: Event) -> str:
    fields = dataclasses.asdict(ev)
    fields.pop("raw")
    return json.dumps(fields, default=str)


# ------------------------------------------------------------------------------------------------ registry, sniff


def test_registered() -> None:
    ct, gw = formats.get("aws-cloudtrail"), formats.get("aws-apigateway")
    assert ct is not None and ct.vendor == "aws" and ct.parse is aws.parse_cloudtrail
    assert gw is not None and gw.vendor == "aws" and gw.parse is aws.parse_apigateway


@pytest.mark.parametrize("path", CLOUDTRAIL_FILES, ids=lambda p: p.name)
def test_cloudtrail_sniff_claims_every_sample(path: Path) -> None:
    head = FileSource(str(path)).head()
    assert aws.sniff_cloudtrail(head) >= 0.5
    assert aws.sniff_apigateway(head) < 0.5


@pytest.mark.parametrize("path", [APIGW, APIGW_HAND], ids=lambda p: p.name)
def test_apigateway_sniff_claims_every_sample(path: Path) -> None:
    head = FileSource(str(path)).head()
    assert aws.sniff_apigateway(head) >= 0.5
    assert aws.sniff_cloudtrail(head) < 0.5


OTHER_VENDOR_LINES = {
    # Okta System Log LogEvent (connectors.md §1.2 shape)
    "okta": '{"uuid":"a1","published":"2025-08-17T11:15:42.000Z","eventType":"user.session.start",'
            '"actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},"outcome":{"result":"SUCCESS"},'
            '"client":{"ipAddress":"192.0.2.1"}}',
    # Vault file audit device
    "vault": '{"time":"2025-08-17T11:15:42.1Z","type":"request","auth":{"accessor":"hmac-sha256:ab",'
             '"policies":["default"]},"request":{"id":"r1","operation":"read","path":"secret/data/x",'
             '"remote_address":"192.0.2.1"}}',
    # nginx escape=json access log
    "nginx": '{"time":"2025-08-17T11:15:42+00:00","remote_addr":"192.0.2.1","method":"GET","uri":"/api/v1/x",'
             '"status":200,"bytes":12,"user_agent":"curl/8","request_id":"abc"}',
}


@pytest.mark.parametrize("vendor", sorted(OTHER_VENDOR_LINES))
def test_sniffs_reject_other_vendors(vendor: str) -> None:
    head = [OTHER_VENDOR_LINES[vendor]] * 3
    assert aws.sniff_cloudtrail(head) < 0.5
    assert aws.sniff_apigateway(head) < 0.5


def test_sniffs_reject_empty_and_plain_text() -> None:
    for head in ([], [""], ["hello world"], ['192.0.2.1 - - [17/Aug/2025:11:15:42 +0000] "GET / HTTP/1.1" 200 1']):
        assert aws.sniff_cloudtrail(head) == 0.0
        assert aws.sniff_apigateway(head) == 0.0


def test_splittable_only_for_json_lines() -> None:
    assert aws.splittable_cloudtrail(FileSource(str(PANTHER)).head())
    assert not aws.splittable_cloudtrail(FileSource(str(RECORDS)).head())  # pretty-printed {"Records": [
    assert not aws.splittable_cloudtrail(['{"Records":[{"eventName":"X","eventTime":"2024-01-02T03:04:05Z"}]}'])
    assert aws.splittable_apigateway(FileSource(str(APIGW)).head())


# ------------------------------------------------------------------------------------------------ CloudTrail samples


def test_assume_role_sample(tmp_path: Path) -> None:
    events, problems = trail(ASSUME)
    assert problems == [] and sorted(events) == [1, 2]
    ev = events[1]
    # "eventTime":"2019-10-02T22:12:29Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole",
    # "sourceIPAddress":"81.2.69.144","eventID":"1917948f-3042-46ec-98e2-62865EXAMPLE"
    assert ev.time == "2019-10-02T22:12:29Z"
    assert ev.action == "token.issue" and ev.outcome == "success"
    assert ev.vendor_type == ev.resource == "sts.amazonaws.com:AssumeRole"
    assert ev.vendor_id == "1917948f-3042-46ec-98e2-62865EXAMPLE"
    assert ev.request_id == "b96b0e4e-e561-11e9-8b3f-7b396EXAMPLE"
    assert ev.src_ip == "81.2.69.144"
    assert ev.user_agent is not None and ev.user_agent.startswith("aws-cli/1.16.248")
    # userIdentity: "arn":"arn:aws:sts::111111111111:assumed-role/JohnDoe/JohnRole1","accessKeyId":"AKIAI44QH8DHBEXAMPLE",
    # sessionIssuer "arn":"arn:aws:iam::111111111111:role/JohnRole1"
    assert ev.principal == "arn:aws:sts::111111111111:assumed-role/JohnDoe/JohnRole1"
    assert ev.client == "arn:aws:iam::111111111111:role/JohnRole1"
    assert ev.credential is not None
    assert ev.credential.keys == ("aws-key:AKIAI44QH8DHBEXAMPLE", sha("AKIAI44QH8DHBEXAMPLE"))
    assert ev.credential.kind == "aws-key" and ev.credential.principal == ev.principal
    # responseElements.credentials: "accessKeyId":"ASIAWHOJDLGPOEXAMPLE","expiration":"Oct 2, 2019 11:12:29 PM";
    # assumedRoleUser "arn":"arn:aws:sts::111111111111:assumed-role/test-role/Role2WithTags";
    # requestParameters "roleArn":"arn:aws:iam::111111111111:role/JohnRole2"
    raw = json.loads(ASSUME.read_text().splitlines()[0])
    token = raw["responseElements"]["credentials"]["sessionToken"]
    sub = ev.subject
    assert sub is not None and sub.kind == "session"
    assert sub.keys == ("aws-key:ASIAWHOJDLGPOEXAMPLE", sha("ASIAWHOJDLGPOEXAMPLE"), sha(token))
    assert sub.principal == "arn:aws:sts::111111111111:assumed-role/test-role/Role2WithTags"
    assert sub.client == "arn:aws:iam::111111111111:role/JohnRole2"
    assert sub.issued_at == "2019-10-02T22:12:29Z" and sub.expires_at == "2019-10-02T23:12:29Z"
    assert sub.preview == "ASIA…MPLE"
    # The session token is a secret: nowhere but in raw (which the case file redacts).
    assert token not in outside_raw(ev) and token[:40] not in outside_raw(ev)
    assert ev.extra["target"] == "arn:aws:iam::111111111111:role/JohnRole2"
    assert ev.extra["region"] == "us-east-2" and ev.extra["account"] == "111111111111"


def test_batch_get_secret_value_sample() -> None:
    events, problems = trail(BATCH)  # one record, no trailing newline
    assert problems == [] and list(events) == [1]
    ev = events[1]
    # "eventTime":"2024-10-11T08:56:05Z","eventName":"BatchGetSecretValue","sourceIPAddress":"216.160.83.56",
    # userIdentity "accessKeyId":"ACCESSKEYID","arn":"arn:aws:iam::000000000:user/test@elastic.co"
    assert ev.time == "2024-10-11T08:56:05Z"
    assert ev.action == "secret.read" and ev.outcome == "success"
    assert ev.principal == "arn:aws:iam::000000000:user/test@elastic.co"
    assert ev.src_ip == "216.160.83.56"
    assert ev.credential is not None and ev.credential.keys[0] == "aws-key:ACCESSKEYID"
    assert ev.credential.kind == "aws-key"
    assert ev.resource == "secretsmanager.amazonaws.com:BatchGetSecretValue"
    assert ev.extra["target_field"] == "secretIdList"
    assert ev.extra["target"] == [
        "arn:aws:secretsmanager:us-east-1:000000000:secret:MyTestSecret-nxYStj",
        "arn:aws:secretsmanager:us-east-1:000000000:secret:DdApiKeySecret-aUFEgO4SmSGN-xqgqXR",
    ]
    assert ev.extra["read_only"] is True


def test_console_login_sample() -> None:
    events, problems = trail(CONSOLE)
    assert problems == [] and sorted(events) == [1, 2, 3]
    # line 1: "eventTime":"2014-07-16T15:49:27Z", "arn":"arn:aws:iam::111122223333:user/JohnDoe",
    # "responseElements":{"ConsoleLogin":"Success"}, no accessKeyId
    ok = events[1]
    assert (ok.time, ok.action, ok.outcome) == ("2014-07-16T15:49:27Z", "login", "success")
    assert ok.principal == "arn:aws:iam::111122223333:user/JohnDoe" and ok.src_ip == "89.160.20.156"
    assert ok.credential is None and ok.extra["mfa_used"] == "No"
    # line 2: JaneDoe, "errorMessage":"Failed authentication", "ConsoleLogin":"Failure"
    bad = events[2]
    assert (bad.time, bad.action, bad.outcome) == ("2014-07-08T17:35:27Z", "auth.fail", "failure")
    assert bad.principal == "arn:aws:iam::111122223333:user/JaneDoe"
    assert bad.extra["error_message"] == "Failed authentication"
    # line 3: an AssumedRole console sign-in failure with "accessKeyId":"AKIAIOSFODNN7EXAMPLE"
    role = events[3]
    assert role.action == "auth.fail" and role.principal == "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName"
    assert role.credential is not None and role.credential.keys[0] == "aws-key:AKIAIOSFODNN7EXAMPLE"
    assert role.client == "arn:aws:iam::123456789012:role/RoleToBeAssumed"
    # lines 2 and 3 share the placeholder eventID "11ea990b-4678-4bcd-8fbe-625EXAMPLE" (upstream's, kept)
    assert bad.vendor_id == role.vendor_id == "11ea990b-4678-4bcd-8fbe-625EXAMPLE"


# Panther lines that cannot become events; see SOURCES.md "Odd lines".
PANTHER_PROBLEMS = {
    18: "signin.amazonaws.com:ConsoleLogin: no eventTime",
    19: "signin.amazonaws.com:ConsoleLogin: no eventTime",
    20: "ec2.amazonaws.com:DescribeInstances: no eventTime",
    21: "signin.amazonaws.com:ConsoleLogin: no eventTime",
    179: "secretsmanager.amazonaws.com:BatchGetSecretValue: no eventTime",
    204: "sso.amazonaws.com:CreateToken: no eventTime",
    210: "no eventName",  # {"eventType":"logout"}
    212: "empty JSON object",  # {}
}


def test_panther_sample() -> None:
    events, problems = trail(PANTHER)
    assert {p.line: p.kind for p in problems} == dict.fromkeys(PANTHER_PROBLEMS, "malformed")
    for p in problems:
        assert p.reason.startswith(PANTHER_PROBLEMS[p.line])
    assert sorted(events) == sorted(set(range(1, 213)) - set(PANTHER_PROBLEMS))
    for ev in events.values():
        assert ev.vendor == "aws" and ev.action in ACTIONS and ev.outcome in OUTCOMES and ev.time.endswith("Z")

    # 15: Panther-lowercased keys: "eventname":"GetRecords","eventsource":"dynamodb.amazonaws.com",
    # "eventtime":"2023-01-10 21:04:02","eventid":"5d4b45ed-…","useridentity":{"arn":"arn:aws:test_arn"}
    low = events[15]
    assert low.time == "2023-01-10T21:04:02Z" and low.resource == "dynamodb.amazonaws.com:GetRecords"
    assert low.principal == "arn:aws:test_arn" and low.vendor_id == "5d4b45ed-a15c-41b6-80e9-031729fa060d"
    # 11: "errorCode":"AccessDenied" on organizations:LeaveOrganization, "eventTime":"2025-01-20 15:59:33.000000000"
    denied = events[11]
    assert (denied.action, denied.outcome) == ("auth.fail", "failure")
    assert denied.time == "2025-01-20T15:59:33.000000000Z"
    assert denied.credential is not None and denied.credential.keys[0] == "aws-key:SAMPLE_ACCESS_KEY"
    # 32: ConsoleLogin Success for "arn:aws:iam::111122223333:user/anaya" from "192.0.2.0", "MFAUsed":"Yes"
    login = events[32]
    assert (login.action, login.outcome, login.principal) == ("login", "success", "arn:aws:iam::111122223333:user/anaya")
    assert login.src_ip == "192.0.2.0" and login.extra["mfa_used"] == "Yes"
    # 42: sso.amazonaws.com "Authenticate", "eventType":"AwsServiceEvent" (IAM Identity Center portal sign-in)
    assert events[42].action == "login" and events[42].credential is None
    # 178: GetSecretValue "errorCode":"AccessDenied" by "accessKeyId":"ASIASXP6SDP2LKLKYYC4" (temporary key)
    secret = events[178]
    assert (secret.action, secret.outcome) == ("auth.fail", "failure")
    assert secret.credential is not None and secret.credential.kind == "session"
    assert secret.credential.keys[0] == "aws-key:ASIASXP6SDP2LKLKYYC4"
    assert secret.extra["target"].endswith(":secret:stratus-red-team-retrieve-secret-3-gscOm8")
    # 183: ModifySnapshotAttribute "createVolumePermission":{"add":{"items":[{"group":"all"}]}} (made public)
    assert events[183].action == "data.export" and events[183].extra["target"] == "snap-1111"
    # 205: AssumeRole by "invokedBy":"lambda.amazonaws.com" with "accessKeyId":"REDACTED": no key is made of it,
    # and "sourceIPAddress":"lambda.amazonaws.com" is not an IP
    lam = events[205]
    assert lam.action == "token.issue" and lam.subject is None and lam.credential is None
    assert lam.client == "lambda.amazonaws.com" and lam.src_ip is None
    assert lam.extra["source"] == "lambda.amazonaws.com"
    # 206: organizations "CreateAccountResult", "eventType":"AwsServiceEvent", "eventTime":"2021-05-20 15:53:47Z"
    assert events[206].action == "other" and events[206].time == "2021-05-20T15:53:47Z"
    # 71: iam AttachRolePolicy "policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"
    assert events[71].action == "admin.change"
    assert events[71].extra["target"] == "arn:aws:iam::aws:policy/AdministratorAccess"


# ------------------------------------------------------------------------------------------------ {"Records": […]}


def test_records_file_token_lifecycle() -> None:
    """The hand-made pretty-printed `{"Records": [...]}` file; provenance "line" = 1-based index in Records."""
    events, problems = trail(RECORDS)
    assert problems == [] and sorted(events) == list(range(1, 11))
    bob_key = ("aws-key:AKIAI44QH8DHBEXAMPLE", sha("AKIAI44QH8DHBEXAMPLE"))
    # 1: alice (AKIAIOSFODNN7EXAMPLE) CreateAccessKey for bob → "accessKeyId":"AKIAI44QH8DHBEXAMPLE",
    #    "createDate":"Oct 13, 2023, 3:24:12 PM"
    create = events[1]
    assert create.action == "token.issue" and create.time == "2023-10-13T15:24:12Z"
    assert create.credential is not None and create.credential.keys[0] == "aws-key:AKIAIOSFODNN7EXAMPLE"
    assert create.subject is not None and create.subject.keys == bob_key
    assert create.subject.kind == "aws-key" and create.subject.principal == "bob"
    assert create.subject.issued_at == "2023-10-13T15:24:12Z"
    # 2: bob GetSessionToken → "accessKeyId":"ASIAIOSFODNN7EXAMPLE", "expiration":"Oct 14, 2023, 3:30:00 AM"
    sts = events[2]
    assert sts.action == "token.issue" and sts.credential is not None and sts.credential.keys == bob_key
    token = "FwoGZXIvYXdzEXAMPLEhandmadeSessionToken0123456789abcdef"
    assert sts.subject is not None and sts.subject.kind == "session"
    assert sts.subject.keys == ("aws-key:ASIAIOSFODNN7EXAMPLE", sha("ASIAIOSFODNN7EXAMPLE"), sha(token))
    assert sts.subject.principal == "arn:aws:iam::111122223333:user/bob"
    assert sts.subject.expires_at == "2023-10-14T03:30:00Z"
    assert token not in outside_raw(sts)
    # 3: the session reads "secretId":"prod/billing/db"; creationDate "2023-10-13T15:40:02Z" is when it was issued
    read = events[3]
    assert read.action == "secret.read" and read.src_ip == "203.0.113.7"
    assert read.credential is not None and read.credential.kind == "session"
    assert read.credential.issued_at == "2023-10-13T15:40:02Z"
    assert read.principal == "arn:aws:sts::111122223333:assumed-role/deploy/bob-session"
    assert read.client == "arn:aws:iam::111122223333:role/deploy"
    assert (read.extra["target_field"], read.extra["target"]) == ("secretId", "prod/billing/db")
    # 4 / 5: ssm GetParameter with "withDecryption":true is a secret read; without it an API call
    assert events[4].action == "secret.read" and events[4].extra["target"] == "/prod/payments/api-key"
    assert events[5].action == "api.call"
    # 6: UpdateAccessKey "status":"Inactive" → revoke of bob's key; 7: DeleteAccessKey → revoke
    for n in (6, 7):
        assert events[n].action == "token.revoke"
        assert events[n].subject is not None and events[n].subject.keys == bob_key
        assert events[n].subject.principal == "bob"
    # 8: AssumeRole refused ("errorCode":"AccessDenied"): nothing minted
    refused = events[8]
    assert (refused.action, refused.outcome, refused.subject) == ("auth.fail", "failure", None)
    assert refused.extra["error_code"] == "AccessDenied"
    # 9: an AWS service acting ("type":"AWSService","invokedBy":"ec2.amazonaws.com"): no credential, no IP
    svc = events[9]
    assert svc.action == "api.call" and svc.credential is None and svc.principal is None
    assert svc.client == "ec2.amazonaws.com" and svc.src_ip is None
    # 10: UpdateAccessKey "status":"Active" re-enables a key: an admin change, not a revocation
    assert events[10].action == "admin.change" and events[10].subject is None
    assert events[10].extra["target"] == "AKIAIOSFODNN7EXAMPLE"


def _records_text() -> list[dict]:
    return json.loads(RECORDS.read_text())["Records"]


def test_records_single_line_gzip_and_concatenated(tmp_path: Path) -> None:
    recs = _records_text()
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps({"Records": recs[:3]}), encoding="utf-8")
    events, problems = trail(one_line)
    assert problems == [] and sorted(events) == [1, 2, 3]
    assert not aws.splittable_cloudtrail(FileSource(str(one_line)).head())
    assert aws.sniff_cloudtrail(FileSource(str(one_line)).head()) >= 0.5

    gz = tmp_path / "111122223333_CloudTrail_us-east-1_20231013T1540Z_x.json.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps({"Records": recs}).encode()))
    events, problems = trail(gz)
    assert problems == [] and sorted(events) == list(range(1, 11))
    assert events[3].action == "secret.read"

    # Delivery files concatenated one after another: numbering continues across them.
    cat = tmp_path / "cat.json"
    cat.write_text(json.dumps({"Records": recs[:4]}) + "\n" + json.dumps({"Records": recs[4:]}) + "\n")
    events, problems = trail(cat)
    assert problems == [] and sorted(events) == list(range(1, 11))
    assert events[6].action == "token.revoke"


def test_records_truncated(tmp_path: Path) -> None:
    text = json.dumps({"Records": _records_text()}, indent=2)
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index('"eventName": "GetParameter"')], encoding="utf-8")  # inside record 4
    events, problems = trail(cut)
    assert sorted(events) == [1, 2, 3]
    assert len(problems) == 1 and problems[0].line == 4 and problems[0].kind == "malformed"
    assert problems[0].reason.startswith("Records array truncated or broken after record 3")


def test_records_item_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "odd.json"
    p.write_text(json.dumps({"Records": [record(), 7, {}]}), encoding="utf-8")
    events, problems = trail(p)
    assert list(events) == [1]
    assert [(x.line, x.kind) for x in problems] == [(2, "malformed"), (3, "malformed")]
    assert problems[0].reason.startswith("record 2 is not a JSON object")


def test_records_wrapper_on_a_line_of_json_lines(tmp_path: Path) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_text(json.dumps(record()) + "\n" + json.dumps({"Records": [record(), record()]}) + "\n")
    events = [r for r in aws.parse_cloudtrail(FileSource(str(p))) if isinstance(r, Parsed)]
    assert [r.line for r in events] == [1, 2, 2]


# ------------------------------------------------------------------------------------------------ mapping


ACTION_CASES = [
    # (eventSource, eventName, overrides, expected action)
    ("sts.amazonaws.com", "AssumeRole", {}, "token.issue"),
    ("sts.amazonaws.com", "AssumeRoleWithSAML", {}, "token.issue"),
    ("sts.amazonaws.com", "AssumeRoleWithWebIdentity", {}, "token.issue"),
    ("sts.amazonaws.com", "GetSessionToken", {}, "token.issue"),
    ("sts.amazonaws.com", "GetFederationToken", {}, "token.issue"),
    ("sts.amazonaws.com", "GetCallerIdentity", {}, "api.call"),
    ("sso.amazonaws.com", "GetRoleCredentials", {}, "token.issue"),
    ("iam.amazonaws.com", "CreateAccessKey", {}, "token.issue"),
    ("iam.amazonaws.com", "DeleteAccessKey", {}, "token.revoke"),
    ("iam.amazonaws.com", "UpdateAccessKey", {"requestParameters": {"status": "Inactive"}}, "token.revoke"),
    ("iam.amazonaws.com", "UpdateAccessKey", {"requestParameters": {"status": "Active"}}, "admin.change"),
    ("secretsmanager.amazonaws.com", "GetSecretValue", {}, "secret.read"),
    ("secretsmanager.amazonaws.com", "BatchGetSecretValue", {}, "secret.read"),
    ("secretsmanager.amazonaws.com", "PutSecretValue", {}, "secret.write"),
    ("ssm.amazonaws.com", "GetParameter", {"requestParameters": {"withDecryption": True}}, "secret.read"),
    ("ssm.amazonaws.com", "GetParameters", {"requestParameters": {"withDecryption": True}}, "secret.read"),
    ("ssm.amazonaws.com", "GetParameters", {"requestParameters": {"names": ["/a"]}}, "api.call"),
    ("ssm.amazonaws.com", "PutParameter", {}, "secret.write"),
    ("signin.amazonaws.com", "ConsoleLogin", {"responseElements": {"ConsoleLogin": "Success"}}, "login"),
    ("signin.amazonaws.com", "ConsoleLogin", {"responseElements": {"ConsoleLogin": "Failure"}}, "auth.fail"),
    ("iam.amazonaws.com", "AttachUserPolicy", {}, "admin.change"),
    ("iam.amazonaws.com", "CreateUser", {}, "admin.change"),
    ("iam.amazonaws.com", "ListAccessKeys", {}, "api.call"),
    ("s3.amazonaws.com", "PutBucketPolicy", {}, "admin.change"),
    ("kms.amazonaws.com", "PutKeyPolicy", {}, "admin.change"),
    ("cloudtrail.amazonaws.com", "StopLogging", {}, "admin.change"),
    ("dynamodb.amazonaws.com", "ExportTableToPointInTime", {}, "data.export"),
    ("rds.amazonaws.com", "ModifyDBSnapshotAttribute", {"requestParameters": {"valuesToAdd": ["all"]}}, "data.export"),
    ("rds.amazonaws.com", "ModifyDBSnapshotAttribute", {"requestParameters": {"valuesToRemove": ["1"]}}, "api.call"),
    ("s3.amazonaws.com", "GetObject", {}, "api.call"),
    ("s3.amazonaws.com", "GetObject", {"errorCode": "AccessDenied"}, "auth.fail"),
    ("ec2.amazonaws.com", "RunInstances", {"errorCode": "Client.UnauthorizedOperation"}, "auth.fail"),
    ("ec2.amazonaws.com", "DescribeInstances", {"eventType": "AwsServiceEvent"}, "other"),
]


@pytest.mark.parametrize("source,name,overrides,action", ACTION_CASES,
                         ids=[f"{c[1]}-{c[3]}-{i}" for i, c in enumerate(ACTION_CASES)])
def test_action_mapping(source: str, name: str, overrides: dict, action: str, tmp_path: Path) -> None:
    ev = one(record(eventSource=source, eventName=name, **overrides), tmp_path)
    assert ev.action == action
    assert ev.outcome == ("failure" if "errorCode" in overrides or action == "auth.fail" else "success")


def test_failed_issue_and_revoke_name_no_subject(tmp_path: Path) -> None:
    ev = one(record(eventSource="iam.amazonaws.com", eventName="DeleteAccessKey", errorCode="NoSuchEntity",
                    requestParameters={"accessKeyId": "AKIAI44QH8DHBEXAMPLE"}), tmp_path)
    assert (ev.action, ev.outcome, ev.subject) == ("token.revoke", "failure", None)
    assert ev.extra["target"] == "AKIAI44QH8DHBEXAMPLE"


def test_temporary_and_long_term_key_kinds(tmp_path: Path) -> None:
    ident = {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s", "accessKeyId": "ASIAY34FZKBOKMUTVV7A",
             "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"},
                                "attributes": {"creationDate": "2024-01-02T02:00:00Z"}}}
    ev = one(record(userIdentity=ident), tmp_path)
    assert ev.credential is not None and ev.credential.kind == "session"
    assert ev.credential.keys == ("aws-key:ASIAY34FZKBOKMUTVV7A", sha("ASIAY34FZKBOKMUTVV7A"))
    assert ev.credential.client == "arn:aws:iam::1:role/r" and ev.credential.principal == "arn:aws:sts::1:assumed-role/r/s"
    assert ev.credential.issued_at == "2024-01-02T02:00:00Z"
    ev = one(record(), tmp_path)
    assert ev.credential is not None and ev.credential.kind == "aws-key" and ev.credential.issued_at is None


def test_principal_fallbacks(tmp_path: Path) -> None:
    ev = one(record(userIdentity={"type": "IAMUser", "userName": "carol", "principalId": "AIDA1"}), tmp_path)
    assert ev.principal == "carol" and ev.credential is None
    ev = one(record(userIdentity={"type": "Unknown", "principalId": "AIDA2"}), tmp_path)
    assert ev.principal == "AIDA2"


def test_bad_cloudtrail_lines_are_problems(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(record()),
        "",
        "not json at all",
        "[1, 2]",
        json.dumps(record(eventTime="yesterday")),
        json.dumps(record(eventTime=None)),
        json.dumps(record(userIdentity="alice", requestParameters="x", responseElements=[1])),
        json.dumps(record(eventTime=True)),
    ]
    p.write_text("\n".join(lines) + "\n")
    events, problems = trail(p)
    assert sorted(events) == [1, 7]
    assert [(x.line, x.kind) for x in problems] == [
        (2, "skipped"), (3, "malformed"), (4, "malformed"), (5, "malformed"), (6, "malformed"), (8, "malformed")]
    assert problems[3].reason.startswith("ec2.amazonaws.com:DescribeInstances: unreadable eventTime 'yesterday'")
    assert problems[4].reason == "ec2.amazonaws.com:DescribeInstances: no eventTime"


def test_no_event_id_gives_id_text(tmp_path: Path) -> None:
    rec = record()
    del rec["eventID"]
    p = tmp_path / "noid.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    (res,) = list(aws.parse_cloudtrail(FileSource(str(p))))
    assert isinstance(res, Parsed) and res.event.vendor_id is None and res.id_text and "DescribeInstances" in res.id_text


def test_chunk_keeps_file_line_numbers() -> None:
    """Workers parse runs of lines (ChunkSource): the line numbers must stay those of the file."""
    lines = PANTHER.read_text().splitlines()[199:212]  # file lines 200..212
    got = [(r.line, type(r).__name__) for r in aws.parse_cloudtrail(ChunkSource("x", 200, lines))]
    assert [n for n, _ in got] == list(range(200, 213))
    assert dict(got)[210] == "Problem" and dict(got)[212] == "Problem" and dict(got)[205] == "Parsed"


# ------------------------------------------------------------------------------------------------ API Gateway


def test_apigateway_rest_sample() -> None:
    events, problems = gateway(APIGW)
    assert problems == [] and sorted(events) == [1, 2, 3, 4, 5]
    # line 1: {"requestId":"48752d0f-c99d-4cfa-a5a7-f3c6834d19e5","ip":"1.128.0.0","caller":"-","user":"-",
    # "requestTime":"10/Jun/2023:15:36:28 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200",
    # "protocol":"HTTP/1.1","responseLength":"184"}
    ev = events[1]
    assert ev.time == "2023-06-10T15:36:28Z" and ev.vendor_id == ev.request_id == "48752d0f-c99d-4cfa-a5a7-f3c6834d19e5"
    assert (ev.method, ev.resource, ev.status, ev.bytes, ev.src_ip) == ("GET", "/pets", 200, 184, "1.128.0.0")
    assert ev.principal is None and ev.credential is None  # "caller":"-","user":"-"
    assert (ev.action, ev.outcome) == ("other", "success")  # no identity: an anonymous request
    # line 2 (spaced JSON): "requestTime": "19/Jul/2023:16:15:46 +0000", "resourcePath": "/pets/{petId}"
    assert events[2].time == "2023-07-19T16:15:46Z" and events[2].resource == "/pets/{petId}"
    # line 4: "stage":"prod","apiId":"asad15n3p0","domainName":"asad15n3p0.execute-api.us-east-1.amazonaws.com"
    assert events[4].extra["stage"] == "prod" and events[4].extra["api_id"] == "asad15n3p0"
    assert events[4].extra["domain_name"] == "asad15n3p0.execute-api.us-east-1.amazonaws.com"
    # line 5 is the last, without a trailing newline: "responseLength":"1310"
    assert events[5].bytes == 1310 and events[5].resource == "/"


def test_apigateway_handmade() -> None:
    events, problems = gateway(APIGW_HAND)
    assert sorted(events) == [1, 2, 3]
    assert [(p.line, p.kind) for p in problems] == [(4, "skipped"), (5, "malformed"), (6, "malformed")]
    # 1: HTTP API "routeKey":"GET /pets","path":"/pets","requestTimeEpoch":"1697212201123", flat Cognito claims
    # "authorizer.claims.sub":"8f3c1a2e-user","authorizer.claims.client_id":"4abcd1efgh2example",
    # "authorizer.claims.iss":"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
    # "authorizer.claims.jti":"7e1d2c3b-jti-0001"
    http = events[1]
    assert http.time == "2023-10-13T15:50:01.123Z"
    assert (http.method, http.resource, http.status, http.bytes) == ("GET", "/pets", 200, 512)
    assert http.principal == "8f3c1a2e-user" and http.client == "4abcd1efgh2example"
    assert http.credential is not None
    assert http.credential.keys == ("jti:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE:7e1d2c3b-jti-0001",)
    assert http.action == "api.call" and http.extra["route_key"] == "GET /pets"
    # 2: REST, nested "identity": {"sourceIp": "203.0.113.7", "apiKey": "Xk7r…S1tU", "apiKeyId": "k9z8y7x6w5"},
    # "status": "403"
    raw_key = "Xk7rPq2LmN9vB4cD6eF8gH0jK3lM5nO7pQ9rS1tU"
    denied = events[2]
    assert (denied.action, denied.outcome, denied.status, denied.method) == ("auth.fail", "failure", 403, "POST")
    assert denied.src_ip == "203.0.113.7" and denied.user_agent == "python-requests/2.31.0"
    assert denied.credential is not None and denied.credential.kind == "api-key"
    assert sha(raw_key) in denied.credential.keys
    assert denied.extra["api_key_id"] == "k9z8y7x6w5"
    assert raw_key not in outside_raw(denied)
    # 3: SigV4 caller: "identity.accessKey":"ASIAIOSFODNN7EXAMPLE","identity.userArn":"arn:aws:sts::…/bob-session"
    sig = events[3]
    assert sig.credential is not None and sig.credential.keys[0] == "aws-key:ASIAIOSFODNN7EXAMPLE"
    assert sig.credential.kind == "session"
    assert sig.principal == "arn:aws:sts::111122223333:assumed-role/deploy/bob-session"
    assert sig.resource == "/admin/export" and sig.action == "api.call"
    assert problems[2].reason.startswith("request a1b2c3d4-0006-4e5f-8a9b-000000000006: no requestTime")


def test_apigateway_http_api_default_format(tmp_path: Path) -> None:
    # The HTTP API console default: requestId, ip, requestTime, httpMethod, routeKey, status, protocol, responseLength
    line = ('{ "requestId":"Ab1CdEfGhIjKlM=", "ip": "192.0.2.9", "requestTime":"13/Oct/2023:16:00:00 +0000", '
            '"httpMethod":"DELETE","routeKey":"DELETE /items/{id}", "status":"404","protocol":"HTTP/1.1", '
            '"responseLength":"0" }')
    p = tmp_path / "http.log"
    p.write_text(line)
    assert aws.sniff_apigateway(FileSource(str(p)).head()) >= 0.5
    events, problems = gateway(p)
    ev = events[1]
    assert problems == [] and ev.time == "2023-10-13T16:00:00Z"
    assert (ev.method, ev.resource, ev.status, ev.bytes, ev.outcome) == ("DELETE", "/items/{id}", 404, 0, "failure")
