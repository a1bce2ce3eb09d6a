"""`connectors.aws` live verbs against moto 5.2.5 in server mode (moto: a widely used AWS API emulator).

One `moto_server` per module (tests.connectors.moto_peer), on a free 127.0.0.1 port, with signature checks on
(`INITIAL_NO_AUTH_ACTION_COUNT`), stopped by its pid. Every call is signed by botocore's SigV4 signer inside
`connectors.aws` and sent through `ConnectorClient`; moto recomputes the signature, so a wrong secret gets 403
`SignatureDoesNotMatch` and a deleted key 403 `InvalidClientTokenId`. Keys are moto's own (fake, valid-shaped).

What moto cannot show, and how it is tested instead:

- moto lets an **Inactive** key authenticate (it never reads `Status`), so on moto a deactivated key probes
  `still-live`; on AWS it is refused with `InvalidClientTokenId`. The test pins moto's behaviour, and the
  refusal path is proven with a **deleted** key, which moto refuses as AWS does.
- moto has no CloudTrail `LookupEvents` (HTTP 500, `NotImplementedError`): the test pins that, and the pull's
  paging, cursor and resume logic run against an in-process `LookupEvents` fake (httpx.MockTransport) that
  answers newest first, two events a page, as CloudTrail's JSON 1.1 protocol does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from casefile.case import create_case
from casefile.ingest import ingest
from casefile.query import credential_id_for
from connectors import aws
from connectors.config import ConnectorSettings, whoami_hook
from connectors.http import ConnectorError, InvalidCredentialError, NotFoundError, ServerError
from connectors.pull import Page, pull_hook
from tests.connectors.moto_peer import ACCOUNT, Moto, moto_server

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as m:
        yield m


def assert_no_secret(session: aws.AwsSession, *creds: aws.AwsCredentials, texts: tuple[str, ...] = ()) -> None:
    shown = [repr(asdict(e)) for e in session.journal] + list(texts)
    for c in creds:
        for secret in c.secrets():
            for text in shown:
                assert secret not in text


# ---------------------------------------------------------------- secret, region, endpoints (no server)


def test_secret_formats_and_errors_never_echo_the_secret() -> None:
    a = aws.parse_secret("AKIAEXAMPLE000000001:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert (a.access_key_id, a.session_token) == ("AKIAEXAMPLE000000001", None)
    b = aws.parse_secret(json.dumps({"Credentials": {"AccessKeyId": "ASIAEXAMPLE000000002",
                                                     "SecretAccessKey": "s3cr3t/example+key", "SessionToken": "FwoGZXIvExampleSessionTok"}}))
    assert b.session_token == "FwoGZXIvExampleSessionTok" and b.secret_access_key == "s3cr3t/example+key"
    assert "s3cr3t" not in repr(b) and "FwoGZXIv" not in repr(b)
    for bad in ("", "nocolon", "akia-lower:secret", '{"access_key_id": "AKIAEXAMPLE000000003"}', "[1]"):
        with pytest.raises(ValueError) as e:
            aws.parse_secret(bad)
        assert "secret" in str(e.value)
    with pytest.raises(ValueError) as e:
        aws.parse_secret("AKIAEXAMPLE000000004:")
    assert "AKIAEXAMPLE000000004" in str(e.value)


def test_region_and_endpoints_from_the_url() -> None:
    assert aws.region_of("https://iam.amazonaws.com") == "us-east-1"
    assert aws.region_of("https://sts.eu-west-1.amazonaws.com") == "eu-west-1"
    assert aws.region_of("http://127.0.0.1:5000") == "us-east-1"
    assert aws.region_of("https://ap-southeast-2.aws-proxy.example.com") == "ap-southeast-2"
    iam = aws.endpoint_for("https://sts.eu-west-1.amazonaws.com", "iam")
    assert (iam.url, iam.signing_region) == ("https://iam.amazonaws.com/", "us-east-1")  # IAM is global
    sts = aws.endpoint_for("https://sts.eu-west-1.amazonaws.com", "sts")
    assert (sts.url, sts.signing_region) == ("https://sts.eu-west-1.amazonaws.com/", "eu-west-1")
    ct = aws.endpoint_for("https://iam.amazonaws.com", "cloudtrail")
    assert ct.url == "https://cloudtrail.us-east-1.amazonaws.com/"
    lab = aws.endpoint_for("http://127.0.0.1:5000", "cloudtrail")
    assert (lab.url, lab.signing_region) == ("http://127.0.0.1:5000/", "us-east-1")


# ---------------------------------------------------------------- whoami


def test_whoami_is_the_connector_test_hook(moto: Moto) -> None:
    hook = whoami_hook("aws")
    assert hook is aws.whoami
    who = hook(moto.settings(), moto.secret())
    assert who["account"] == ACCOUNT and who["arn"] == f"arn:aws:iam::{ACCOUNT}:user/stanch-admin"
    assert who["user_id"] and who["access_key_id"] == moto.admin.access_key_id and who["region"] == "us-east-1"
    assert moto.admin.secret_access_key not in repr(who)
    # The JSON form of the secret works too.
    as_json = json.dumps({"access_key_id": moto.admin.access_key_id,
                          "secret_access_key": moto.admin.secret_access_key})
    assert hook(moto.settings(), as_json)["arn"] == who["arn"]
    # A wrong secret is refused by moto's signature check: one line, no secret.
    wrong = f"{moto.admin.access_key_id}:stanchTestWrongSecret000000000000000000000"
    with pytest.raises(InvalidCredentialError) as e:
        hook(moto.settings(), wrong)
    assert e.value.status == 403 and "SignatureDoesNotMatch" in str(e.value)
    assert "stanchTestWrongSecret" not in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- IAM keys, acts and probes


def test_list_keys_and_last_used(moto: Moto) -> None:
    moto.create_user("list-bot")
    k1, k2 = moto.create_key("list-bot"), moto.create_key("list-bot")

    async def main() -> tuple[aws.AwsSession, Any, Any, Any]:
        async with moto.session() as s:
            keys = await aws.list_access_keys(s, "list-bot")
            unused = await aws.access_key_last_used(s, k2.access_key_id)
            await aws.probe_access_key(s, k1)  # moto records the probe as the key's last use
            used = await aws.access_key_last_used(s, k1.access_key_id)
            return s, keys, unused, used

    s, keys, unused, used = run(main())
    assert {k["AccessKeyId"] for k in keys} == {k1.access_key_id, k2.access_key_id}
    assert all(k["Status"] == "Active" and k["UserName"] == "list-bot" and k["CreateDate"] for k in keys)
    assert unused == {"UserName": "list-bot", "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}
    assert used["AccessKeyLastUsed"]["ServiceName"] == "sts" and used["AccessKeyLastUsed"]["LastUsedDate"]
    assert_no_secret(s, moto.admin, k1, k2)


def test_deactivate_undo_delete_with_snapshots_and_probes(moto: Moto) -> None:
    moto.create_user("leaky-bot")
    leaked = moto.create_key("leaky-bot")
    key = leaked.access_key_id
    snaps: list[tuple[str, str, Any, int]] = []

    async def main() -> tuple[aws.AwsSession, dict[str, Any]]:
        async with moto.session() as s:
            def snapshot(what: str, target: str, body: Any) -> None:
                snaps.append((what, target, body, len(s.journal)))

            out: dict[str, Any] = {"before": await aws.probe_access_key(s, leaked)}
            out["deactivate"] = await aws.deactivate_access_key(s, key, snapshot=snapshot)
            out["status_after_deactivate"] = (await aws.list_access_keys(s, "leaky-bot"))[0]["Status"]
            out["after_deactivate"] = await aws.probe_access_key(s, leaked)
            out["undo"] = await aws.reactivate_access_key(s, key, user_name="leaky-bot", snapshot=snapshot)
            out["after_undo"] = await aws.probe_access_key(s, leaked)
            out["wrong_secret"] = await aws.probe_access_key(
                s, aws.AwsCredentials(key, "stanchTestWrongSecret000000000000000000000"))
            journal_before_delete = len(s.journal)
            out["delete"] = await aws.delete_access_key(s, key, snapshot=snapshot)
            out["delete_request_index"] = len(s.journal) - 1
            out["journal_before_delete"] = journal_before_delete
            out["after_delete"] = await aws.probe_access_key(s, leaked)
            out["keys_left"] = await aws.list_access_keys(s, "leaky-bot")
            with pytest.raises(NotFoundError):  # nothing left to snapshot: the act stops before any delete
                await aws.delete_access_key(s, key, snapshot=snapshot)
            return s, out

    s, out = run(main())
    assert out["before"].status == "still-live" and "user/leaky-bot" in out["before"].evidence
    assert out["deactivate"]["status_code"] == 200
    assert out["deactivate"]["snapshot"]["AccessKeyMetadata"]["Status"] == "Active"  # what it was before
    assert out["status_after_deactivate"] == "Inactive"
    # moto 5.2.5 still authenticates an Inactive key (AWS refuses it): the probe reports what the server said.
    assert out["after_deactivate"].status == "still-live"
    assert out["undo"]["snapshot"]["AccessKeyMetadata"]["Status"] == "Inactive"
    assert out["after_undo"].status == "still-live"
    # A wrong secret for a live key id proves nothing about the key.
    assert out["wrong_secret"].status == "revoked-unverified" and "SignatureDoesNotMatch" in out["wrong_secret"].evidence
    # Delete: snapshot first (metadata + last use), then the delete, then a refusal that proves it.
    assert out["delete"]["status_code"] == 200
    snap = out["delete"]["snapshot"]
    assert snap["UserName"] == "leaky-bot" and snap["AccessKeyMetadata"]["AccessKeyId"] == key
    assert snap["AccessKeyMetadata"]["Status"] == "Active" and snap["AccessKeyLastUsed"]["ServiceName"] == "sts"
    assert [(w, t) for w, t, _, _ in snaps] == [("aws.access_key", key)] * 3  # the refused delete took none
    assert snaps[2][2] == snap and out["journal_before_delete"] < snaps[2][3] <= out["delete_request_index"]
    after = out["after_delete"]
    assert after.status == "revoked-verified" and after.http_status == 403 and "InvalidClientTokenId" in after.evidence
    assert out["keys_left"] == []
    assert_no_secret(s, moto.admin, leaked, texts=tuple(v.evidence for v in out.values() if isinstance(v, aws.Verdict)))


def test_a_snapshot_that_cannot_be_stored_stops_the_act(moto: Moto) -> None:
    moto.create_user("kept-bot")
    kept = moto.create_key("kept-bot")

    def refuse(what: str, target: str, body: Any) -> None:
        raise RuntimeError("case is read-only")

    async def main() -> tuple[list[dict[str, str]], aws.Verdict]:
        async with moto.session() as s:
            with pytest.raises(RuntimeError, match="read-only"):
                await aws.delete_access_key(s, kept.access_key_id, snapshot=refuse)
            with pytest.raises(RuntimeError, match="read-only"):
                await aws.deactivate_access_key(s, kept.access_key_id, snapshot=refuse)
            return await aws.list_access_keys(s, "kept-bot"), await aws.probe_access_key(s, kept)

    keys, verdict = run(main())
    assert [k["Status"] for k in keys] == ["Active"] and verdict.status == "still-live"


def test_probe_of_an_unknown_key_and_of_a_stopped_server(moto: Moto, tmp_path: Path) -> None:
    unknown = aws.AwsCredentials("AKIAEXAMPLEUNKNOWN01", "exampleUnknownSecret00000000000000000000")

    async def probe(m: Moto, **options: Any) -> aws.Verdict:
        async with m.session(**options) as s:
            return await aws.probe_access_key(s, unknown)

    assert run(probe(moto)).status == "revoked-verified"
    with moto_server(tmp_path) as gone:
        pass  # stopped by pid on exit
    v = run(probe(gone, max_retries=1, backoff_base_s=0.01, timeout=(2.0, 2.0)))
    assert v.status == "revoked-unverified" and v.http_status is None and "nothing proven" in v.evidence
    assert unknown.secret_access_key not in v.evidence


# ---------------------------------------------------------------- pull: moto has no LookupEvents


def test_moto_has_no_lookup_events(moto: Moto) -> None:
    assert pull_hook("aws") is aws.pull

    async def main() -> list[Page]:
        return [p async for p in aws.pull(moto.settings(), moto.secret(), since=None, until=None, cursors={},
                                          client_options={"max_retries": 0})]

    with pytest.raises(ServerError) as e:
        run(main())
    assert e.value.status == 500
    deadline = time.monotonic() + 5  # the server's traceback reaches its log a moment after the answer
    while "lookup_events action has not been implemented" not in moto.log.read_text():
        assert time.monotonic() < deadline, "moto's 500 was not its NotImplementedError for LookupEvents"
        time.sleep(0.05)


# ---------------------------------------------------------------- pull: paging, cursor, resume, ingest (fake)

T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
LEAKED_KEY = "AKIAEXAMPLELEAKED001"


def ct_record(i: int, when: datetime, name: str = "ListBuckets") -> dict[str, Any]:
    return {"eventVersion": "1.08", "eventID": f"00000000-0000-4000-8000-{i:012d}",
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventSource": "s3.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.50",
            "userAgent": "aws-cli/2.15.0", "requestParameters": None, "responseElements": None,
            "requestID": f"REQ{i:05d}", "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEPRINCIPAL", "accountId": ACCOUNT,
                             "arn": f"arn:aws:iam::{ACCOUNT}:user/leaky-bot", "accessKeyId": LEAKED_KEY,
                             "userName": "leaky-bot"}}


class FakeCloudTrail:
    """LookupEvents over a list of records: newest first, `page` events a page, inclusive Start/EndTime,
    opaque NextTokens. Checks the target, the content type and that the request is SigV4-signed for cloudtrail."""

    def __init__(self, records: list[dict[str, Any]], page: int = 2) -> None:
        self.records = records
        self.page = page
        self.requests: list[dict[str, Any]] = []
        self.fail_after: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["x-amz-target"] == aws.CLOUDTRAIL_TARGET + "LookupEvents"
        assert request.headers["content-type"] == "application/x-amz-json-1.1"
        auth = request.headers["authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIA") and "/us-east-1/cloudtrail/aws4_request" in auth
        body = json.loads(request.content)
        self.requests.append(body)
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            return httpx.Response(500, json={"__type": "InternalFailure"})
        start, end = body.get("StartTime"), body.get("EndTime")

        def t(r: dict[str, Any]) -> float:
            return datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")).timestamp()

        match = sorted((r for r in self.records if (start is None or t(r) >= start) and (end is None or t(r) <= end)),
                       key=t, reverse=True)
        offset = int(body.get("NextToken", "tok-0").split("-")[1])
        chunk = match[offset:offset + self.page]
        out: dict[str, Any] = {"Events": [{"EventId": r["eventID"], "EventName": r["eventName"], "ReadOnly": "true",
                                           "AccessKeyId": LEAKED_KEY, "EventTime": t(r), "EventSource": r["eventSource"],
                                           "Username": "leaky-bot", "Resources": [],
                                           "CloudTrailEvent": json.dumps(r)} for r in chunk]}
        if offset + self.page < len(match):
            out["NextToken"] = f"tok-{offset + self.page}"
        return httpx.Response(200, json=out)


def fake_settings() -> ConnectorSettings:
    return ConnectorSettings(name="ct-fake", kind="aws", url="http://127.0.0.1:9")


SECRET = "AKIAEXAMPLEADMIN0001:exampleAdminSecret0000000000000000000000"


def pull_pages(fake: FakeCloudTrail, cursors: dict[str, str], *, since: str | None = None, until: str | None = None,
               limit: int | None = None) -> list[Page]:
    async def main() -> list[Page]:
        pages: list[Page] = []
        gen: Any = aws.pull(fake_settings(), SECRET, since=since, until=until, cursors=cursors,
                       client_options={"transport": httpx.MockTransport(fake), "max_retries": 0})
        try:
            async for page in gen:
                pages.append(page)
                if limit is not None and len(pages) >= limit:
                    break
        finally:
            await gen.aclose()
        return pages

    return run(main())


def ids(pages: list[Page]) -> set[str]:
    return {json.loads(line)["eventID"] for p in pages for line in p.data().splitlines()}


def test_pull_pages_resume_after_a_crash_and_ingest(tmp_path: Path) -> None:
    records = [ct_record(i, T0 + timedelta(minutes=10 * i)) for i in range(7)]
    fake = FakeCloudTrail(records)
    since = (T0 - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    # A first pull that dies after its first stored page (newest first: events 6 and 5).
    first = pull_pages(fake, {}, since=since, limit=1)
    assert len(first) == 1 and ids(first) == {records[6]["eventID"], records[5]["eventID"]}
    page = first[0]
    assert (page.stream, page.format) == ("cloudtrail", "aws-cloudtrail") and "LookupEvents" in page.endpoint
    assert [json.loads(x) for x in page.data().splitlines()] == [records[6], records[5]]  # the records themselves
    cursor = json.loads(page.cursor or "")
    assert cursor == {"newest": records[6]["eventTime"], "start": since, "lo": records[5]["eventTime"]}
    assert fake.requests[0]["StartTime"] == (T0 - timedelta(hours=1)).timestamp() and "EndTime" not in fake.requests[0]

    # The resumed pull finishes [since, lo] first, then reads from the newest stored event (minus the overlap).
    fake.requests.clear()
    second = pull_pages(fake, {"cloudtrail": page.cursor or ""})
    assert ids(first) | ids(second) == {r["eventID"] for r in records}
    assert fake.requests[0]["EndTime"] == (T0 + timedelta(minutes=50)).timestamp()
    assert json.loads(second[-1].cursor or "") == {"newest": records[6]["eventTime"]}

    # New events, one listed late with a time before the newest stored: the overlap catches both.
    late = ct_record(7, T0 + timedelta(minutes=55), "GetObject")
    new = ct_record(8, T0 + timedelta(minutes=70), "PutObject")
    fake.records += [late, new]
    third = pull_pages(fake, {"cloudtrail": second[-1].cursor or ""})
    assert {late["eventID"], new["eventID"]} <= ids(third)
    assert json.loads(third[-1].cursor or "") == {"newest": new["eventTime"]}

    # `until` bounds the pull.
    bounded = pull_pages(FakeCloudTrail(records), {}, until=records[2]["eventTime"])
    assert ids(bounded) == {r["eventID"] for r in records[:3]}

    # Every page goes through the CloudTrail parser into one case; re-read events dedupe by eventID.
    with create_case(tmp_path / "case.stanch") as case:
        for n, p in enumerate(first + second + third):
            path = tmp_path / f"page-{n}.jsonl"
            path.write_bytes(p.data())
            ingest(case, [str(path)], format_name="aws-cloudtrail")
        assert case.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 9
        assert credential_id_for(case, f"aws-key:{LEAKED_KEY}") is not None


def test_pull_keeps_the_cursor_of_the_last_page_when_a_later_page_fails() -> None:
    fake = FakeCloudTrail([ct_record(i, T0 + timedelta(minutes=i)) for i in range(5)])
    fake.fail_after = 2
    got: list[Page] = []

    async def main() -> None:
        async for page in aws.pull(fake_settings(), SECRET, since=None, until=None, cursors={},
                                   client_options={"transport": httpx.MockTransport(fake), "max_retries": 0}):
            got.append(page)

    with pytest.raises(ConnectorError) as e:
        run(main())
    assert e.value.status == 500 and len(got) == 2
    cursor = json.loads(got[-1].cursor or "")
    assert cursor["lo"] == ct_record(1, T0 + timedelta(minutes=1))["eventTime"] and "start" not in cursor
    rest = pull_pages(FakeCloudTrail(fake.records), {"cloudtrail": got[-1].cursor or ""})
    assert ids(got) | ids(rest) == {r["eventID"] for r in fake.records}
    assert "exampleAdminSecret" not in str(e.value)


def test_a_lookup_item_without_cloudtrail_event_is_rebuilt_from_its_summary() -> None:
    rec = aws._record_of({"EventId": "e-1", "EventName": "DeleteAccessKey", "EventSource": "iam.amazonaws.com",
                          "EventTime": T0.timestamp(), "Username": "leaky-bot", "AccessKeyId": LEAKED_KEY,
                          "ReadOnly": "false"})
    assert rec is not None and rec["eventTime"] == "2026-11-20T09:00:00Z" and rec["eventID"] == "e-1"
    assert rec["userIdentity"] == {"userName": "leaky-bot", "accessKeyId": LEAKED_KEY} and rec["readOnly"] is False
    assert aws._record_of({"EventId": "e-2"}) is None


def test_xml_with_a_dtd_is_refused_not_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b"<GetCallerIdentityResponse><Arn>&b;</Arn></GetCallerIdentityResponse>")
    assert aws._parse_xml(bomb) is None
    ok = b'<R xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Arn>arn:aws:iam::123456789012:user/x</Arn></R>'
    root = aws._parse_xml(ok)
    assert root is not None and root.findtext("Arn") == "arn:aws:iam::123456789012:user/x"


# ---------------------------------------------------------------- status probe (moto) and what moto cannot show


def test_status_probe_reads_iam_with_the_connector_credential(moto: Moto) -> None:
    moto.create_user("status-bot")
    leaked = moto.create_key("status-bot")
    key = leaked.access_key_id

    async def main() -> list[aws.Verdict]:
        async with moto.session() as s:
            out = [await aws.probe_key_status(s, key)]
            await aws.deactivate_access_key(s, key)
            out.append(await aws.probe_key_status(s, key))
            await aws.delete_access_key(s, key)
            out.append(await aws.probe_key_status(s, key, user_name="status-bot"))
            out.append(await aws.probe_key_status(s, key))
            return out

    live, inactive, gone, unknown = run(main())
    assert live.status == "still-live" and "Active" in live.evidence
    assert inactive.status == "revoked-verified" and "Inactive" in inactive.evidence
    assert gone.status == "revoked-verified" and "no longer lists" in gone.evidence
    assert unknown.status == "revoked-verified" and unknown.http_status == 404


# Responses built from the AWS API reference, for what moto does not implement:
# - AWS STS API Reference, "Common Errors": InvalidClientTokenId, HTTP 403 ("The X.509 certificate or AWS access
#   key ID provided does not exist in our records"), in the query-protocol <ErrorResponse> envelope
#   (AWS STS API Reference, GetCallerIdentity, "Errors"); IAM refuses an Inactive key this way.
# - AWS CloudTrail API Reference, LookupEvents: request `LookupAttributes` (at most one `LookupAttribute`,
#   `AttributeKey` AccessKeyId), response `Events[]` with `CloudTrailEvent` and `NextToken`.
STS_INVALID_CLIENT_TOKEN = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message>"
    b"</Error><RequestId>4fc0b3e1-1c4c-4a55-9c3b-000000000001</RequestId></ErrorResponse>")


def test_an_inactive_key_refused_by_sts_is_revoked_verified() -> None:
    def sts(request: httpx.Request) -> httpx.Response:
        assert b"Action=GetCallerIdentity" in request.content
        assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={LEAKED_KEY}/")
        return httpx.Response(403, content=STS_INVALID_CLIENT_TOKEN, headers={"Content-Type": "text/xml"})

    async def main() -> aws.Verdict:
        async with aws.AwsSession(fake_settings(), SECRET, transport=httpx.MockTransport(sts), max_retries=0) as s:
            return await aws.probe_access_key(s, aws.AwsCredentials(LEAKED_KEY, "exampleLeakedSecret0000000000000000000000"))

    verdict = run(main())
    assert verdict.status == "revoked-verified" and verdict.http_status == 403
    assert "InvalidClientTokenId" in verdict.evidence and "exampleLeakedSecret" not in verdict.evidence


def test_pull_filtered_by_access_key_id_sends_the_lookup_attribute_and_keeps_its_own_cursor(tmp_path: Path) -> None:
    from casefile import live
    from casefile.case import create_case
    from connectors.pull import run_pull

    records = [ct_record(i, T0 + timedelta(minutes=i)) for i in range(3)]
    fake = FakeCloudTrail(records)

    with create_case(tmp_path / "c.stanch") as case:
        summary = run_pull(case, fake_settings(), SECRET, filters={"accesskeyid": LEAKED_KEY},
                           client_options={"transport": httpx.MockTransport(fake), "max_retries": 0})
        assert summary.events_added == 3
        assert all(r["LookupAttributes"] == [{"AttributeKey": "AccessKeyId", "AttributeValue": LEAKED_KEY}]
                   for r in fake.requests)
        assert list(live.cursors(case, "ct-fake")) == [f"cloudtrail:AccessKeyId={LEAKED_KEY}"]
    with pytest.raises(Exception, match="one --filter at a time"):
        pull_pages_filtered(fake, {"AccessKeyId": LEAKED_KEY, "Username": "leaky-bot"})
    with pytest.raises(Exception, match="CloudTrail filters by one of"):
        pull_pages_filtered(fake, {"SourceIp": "203.0.113.50"})


def pull_pages_filtered(fake: FakeCloudTrail, filters: dict[str, str]) -> list[Page]:
    async def main() -> list[Page]:
        return [p async for p in aws.pull(fake_settings(), SECRET, since=None, until=None, cursors={},
                                          client_options={"transport": httpx.MockTransport(fake)},
                                          filters=filters)]

    return run(main())


def test_throttling_is_waited_out_within_the_retry_budget() -> None:
    # AWS throttles with HTTP 400 and an error code, not 429 (AWS CloudTrail API Reference, LookupEvents,
    # "Errors": ThrottlingException; JSON 1.1 error body {"__type": ..., "message": ...}).
    records = [ct_record(i, T0 + timedelta(minutes=i)) for i in range(2)]
    fake = FakeCloudTrail(records)
    throttled = [2]
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if throttled[0]:
            throttled[0] -= 1
            return httpx.Response(400, json={"__type": "ThrottlingException", "message": "Rate exceeded"})
        return fake(request)

    async def sleep(s: float) -> None:
        waits.append(s)

    async def main(retries: int) -> list[Page]:
        return [p async for p in aws.pull(fake_settings(), SECRET, since=None, until=None, cursors={},
                                          client_options={"transport": httpx.MockTransport(handler),
                                                          "sleep": sleep, "max_retries": retries})]

    pages = run(main(3))
    assert sum(len(p.records) for p in pages) == 2 and len(waits) == 2
    throttled[0] = 5
    with pytest.raises(ConnectorError, match="ThrottlingException"):
        run(main(1))
