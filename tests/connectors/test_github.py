"""GitHub audit log parser (`connectors/github.py`, format `github-audit`).

Expected values are written from the raw JSON of the fixtures (quoted in comments), not copied from parser output;
epoch-ms times were converted with `date -u -d @<seconds>`. Fixture provenance: tests/fixtures/github/SOURCES.md.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest

from casefile import formats
from casefile.pipeline import ChunkSource
from casefile.records import ACTIONS, OUTCOMES, Event, Parsed, Problem
from casefile.secrets import fingerprint
from casefile.sources import FileSource
from connectors import github
from tests.conftest import fake_token

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "github"
APPOMNI = FIX / "appomni_github_audit_A.jsonl"
ELASTIC = FIX / "elastic_github_test-audit-json_lines1-98.log"
PANTHER = FIX / "panther_github_audit_A.jsonl"
ARRAY = FIX / "handmade_rest_api_audit_log.json"

OKTA_LINE = ('{"uuid":"f0e1d2c3-0000-1111-2222-333344445555","published":"2025-08-17T11:15:42.123Z",'
             '"eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@example.com"},'
             '"outcome":{"result":"SUCCESS"},"client":{"ipAddress":"203.0.113.5"}}')
VAULT_LINE = ('{"time":"2025-08-17T11:15:42.123456Z","type":"request","auth":{"accessor":"hmac-sha256:ab",'
              '"display_name":"token"},"request":{"id":"r1","operation":"read","path":"secret/data/x",'
              '"remote_address":"203.0.113.5"}}')
NGINX_LINE = ('{"time_local":"17/Aug/2025:11:15:42 +0000","remote_addr":"203.0.113.5","request":"GET / HTTP/1.1",'
              '"status":200,"body_bytes_sent":512,"http_user_agent":"curl/8.5.0"}')
GOOGLE_LINE = ('{"kind":"admin#reports#activity","id":{"time":"2025-08-17T11:15:42.123Z","uniqueQualifier":"1",'
               '"applicationName":"token"},"actor":{"email":"a@example.com"},"events":[{"name":"authorize"}]}')


def run(src) -> tuple[dict[int, Event], list[Problem]]:
    events: dict[int, Event] = {}
    problems: list[Problem] = []
    for r in github.parse(src):
        if isinstance(r, Parsed):
            assert r.line not in events
            assert (r.event.vendor_id is None) == (r.id_text is not None)
            events[r.line] = r.event
        else:
            problems.append(r)
    return events, problems


def run_path(path: Path) -> tuple[dict[int, Event], list[Problem]]:
    return run(FileSource(str(path)))


def write(tmp_path: Path, text: str, name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def sha256_key(hashed_token: str) -> str:
    return "sha256:" + base64.b64decode(hashed_token).hex()


# ------------------------------------------------------------------------------------------------ samples


def test_registered() -> None:
    fmt = formats.get("github-audit")
    assert fmt is not None and fmt.vendor == "github" and fmt.parse is github.parse
    assert fmt.splittable is not None


@pytest.mark.parametrize("path,count", [(APPOMNI, 17), (ELASTIC, 98), (ARRAY, 7)], ids=["appomni", "elastic", "array"])
def test_samples_parse_cleanly(path: Path, count: int) -> None:
    events, problems = run_path(path)
    assert problems == []
    assert sorted(events) == list(range(1, count + 1))
    for ev in events.values():
        assert ev.vendor == "github" and ev.action in ACTIONS and ev.outcome in OUTCOMES
        assert ev.time.endswith("Z") and ev.vendor_type


def test_appomni_app_token_workflow_run() -> None:
    # line 3: "@timestamp":1686078701893, "_document_id":"RDSIX6X7F8WlXCkyaBqtOA",
    # "action":"workflows.created_workflow_run", "actor":"john.doe", "actor_ip":"198.51.100.1",
    # "actor_location":{"country_code":"US"}, "hashed_token":"nfd4LqkxPUWZZgY4Gw0ouzqnR6Vil/6QVSKnIeDsKjk=",
    # "programmatic_access_type":"GitHub App server-to-server token", "repo":"acme-inc/example-repo",
    # "token_id":57189181686, "user_agent":"launch/production"
    ev = run_path(APPOMNI)[0][3]
    assert ev.time == "2023-06-06T19:11:41.893Z"
    assert ev.vendor_id == "RDSIX6X7F8WlXCkyaBqtOA"
    assert ev.principal == "john.doe" and ev.src_ip == "198.51.100.1" and ev.country == "US"
    assert ev.action == "api.call" and ev.vendor_type == "workflows.created_workflow_run"
    assert ev.resource == "acme-inc/example-repo" and ev.user_agent == "launch/production"
    assert ev.credential is not None and ev.subject is None
    assert ev.credential.keys == (sha256_key("nfd4LqkxPUWZZgY4Gw0ouzqnR6Vil/6QVSKnIeDsKjk="), "github-token:57189181686")
    assert ev.credential.kind == "access" and ev.credential.principal == "john.doe"


def test_appomni_classic_pat_team_change() -> None:
    # line 9: "@timestamp":1686096308885, "action":"team.add_member", "hashed_token":"mZp8g+OGBjSnsxiRSjcYhBTpoXi5BfdF2q8F1+kPW4M=",
    # "programmatic_access_type":"Personal access token (classic)", "team":"acme-inc/approvers", "token_id":720527199,
    # "token_scopes":"admin:enterprise,admin:gpg_key,...,write:packages", "user_agent":"python-requests/2.25.1"
    ev = run_path(APPOMNI)[0][9]
    assert ev.time == "2023-06-07T00:05:08.885Z"
    assert ev.action == "admin.change" and ev.resource == "acme-inc/approvers"
    assert ev.user_agent == "python-requests/2.25.1"
    assert ev.credential is not None and ev.credential.kind == "pat"
    assert ev.credential.keys == (sha256_key("mZp8g+OGBjSnsxiRSjcYhBTpoXi5BfdF2q8F1+kPW4M="), "github-token:720527199")
    scopes = (ev.credential.scopes or "").split()
    assert scopes[0] == "admin:enterprise" and scopes[-1] == "write:packages" and len(scopes) == 16


def test_elastic_rest_entry_without_document_id() -> None:
    # line 4: {"actor":"github-actor","org":"Example-Org","created_at":1583364382722,"action":"org.invite_member",
    #          "actor_location":{"country_code":"US"},"user":"github-user"}
    events, _ = run_path(ELASTIC)
    ev = events[4]
    assert ev.time == "2020-03-04T23:26:22.722Z"
    assert ev.action == "admin.change" and ev.principal == "github-actor" and ev.resource == "Example-Org"
    assert ev.vendor_id is None and ev.credential is None and ev.extra["user"] == "github-user"
    # line 17: "data":{"team":"Example-Org/authors"}, "action":"team.create" → the team from `data`
    assert events[17].resource == "Example-Org/authors"


def test_panther_oddities() -> None:
    events, problems = run_path(PANTHER)
    # line 15: "created_at":1621305118553.0 (a float of milliseconds, not seconds with a fraction)
    assert events[15].time == "2021-05-18T02:31:58.553Z"
    # line 28: "at_sign_timestamp":"2024-04-09 06:17:55.186000000","created_at":"2024-03-13 22:36:27.788000000"
    assert events[28].time == "2024-04-09T06:17:55.186000000Z"
    # line 23: "@timestamp":1623971719091,"action":"git.push","actor":""
    assert events[23].time == "2021-06-17T23:15:19.091Z" and events[23].principal is None
    assert events[23].action == "api.call"
    # line 27: {"action":"not_repository_vulnerability_alert.dismiss"} — no time at all
    assert Problem(27, "malformed", "not_repository_vulnerability_alert.dismiss: no timestamp (@timestamp or created_at)") in problems


# ------------------------------------------------------------------------------------------------ tokens


def test_leaked_pat_matches_its_audit_trail() -> None:
    # The fixture's hashed_token values are base64(sha256(token)) of these fake tokens (SOURCES.md).
    classic = fingerprint(fake_token("ghp_", 36, salt="gh1"))
    fine = fingerprint(fake_token("github_pat_", 60, salt="gh2"))
    events, _ = run_path(ARRAY)
    for line in (1, 2):  # git.clone and repo.download_zip with the classic PAT
        cred = events[line].credential
        assert cred is not None and cred.keys[0] == classic.keys[0] and cred.keys[1] == "github-token:9100001"
    assert events[3].credential is not None and events[3].credential.keys[0] == fine.keys[0]


def test_handmade_array_entries() -> None:
    events, _ = run_path(ARRAY)
    # item 1: "@timestamp": 1755429342123, "action": "git.clone", "actor": "mallory-dev", "actor_ip": "203.0.113.50",
    # "actor_location": {"country_code": "NL"}, "repo": "acme-corp/payments-api", "token_scopes": "repo,read:org,workflow"
    clone = events[1]
    assert clone.time == "2025-08-17T11:15:42.123Z" and clone.action == "data.export"
    assert clone.principal == "mallory-dev" and clone.src_ip == "203.0.113.50" and clone.country == "NL"
    assert clone.resource == "acme-corp/payments-api" and clone.vendor_id == "hK3rZ0cVq1mD4sT6uW8yAa"
    assert clone.credential is not None and clone.credential.kind == "pat"
    assert clone.credential.scopes == "repo read:org workflow"
    # item 2: "action": "repo.download_zip", "repo": "acme-corp/infra-secrets", "@timestamp": 1755429401777
    assert (events[2].action, events[2].resource, events[2].time) == (
        "data.export", "acme-corp/infra-secrets", "2025-08-17T11:16:41.777Z")
    # item 3: "action": "org.update_actions_secret", "actor_ip": "2001:db8::50", fine-grained PAT, no repo → org
    assert (events[3].action, events[3].src_ip, events[3].resource) == ("admin.change", "2001:db8::50", "acme-corp")
    assert events[3].credential is not None and events[3].credential.kind == "pat"
    # item 4: "action": "git.fetch", "programmatic_access_type": "GitHub App server-to-server token"
    assert events[4].action == "api.call" and events[4].credential is not None
    assert events[4].credential.kind == "access"
    # item 5: "action": "oauth_access.create", no @timestamp, "created_at": 1755431000000, "oauth_application_id": 818181
    assert (events[5].action, events[5].time, events[5].client) == ("token.issue", "2025-08-17T11:43:20.000Z", "818181")
    assert events[5].credential is None  # no token data: the action was done in the web UI
    # item 6: "action": "personal_access_token.destroy"; item 7: "action": "user.failed_login", "actor_ip": "203.0.113.99"
    assert events[6].action == "token.revoke"
    assert (events[7].action, events[7].outcome, events[7].src_ip) == ("auth.fail", "failure", "203.0.113.99")


def test_no_raw_token_outside_raw(tmp_path: Path) -> None:
    # A token pasted into an unexpected field stays only in `raw` (which ingest redacts).
    secret = fake_token("ghp_", 36, salt="leak")
    rec = {"action": "repo.create", "actor": "x", "created_at": 1755429342123, "note": secret}
    events, _ = run_path(write(tmp_path, json.dumps(rec) + "\n"))
    fields = dataclasses.asdict(events[1])
    fields.pop("raw")
    assert secret not in json.dumps(fields, default=str)


# ------------------------------------------------------------------------------------------------ mapping


@pytest.mark.parametrize(
    "vendor_type,action",
    [
        ("personal_access_token.create", "token.issue"),
        ("personal_access_token.regenerate", "token.issue"),
        ("oauth_access.create", "token.issue"),
        ("oauth_authorization.create", "token.issue"),
        ("personal_access_token.destroy", "token.revoke"),
        ("personal_access_token.access_revoked", "token.revoke"),
        ("oauth_access.destroy", "token.revoke"),
        ("oauth_access.revoke", "token.revoke"),
        ("oauth_authorization.destroy", "token.revoke"),
        ("org_credential_authorization.revoke", "token.revoke"),
        ("repo.download_zip", "data.export"),
        ("git.clone", "data.export"),
        ("git.fetch", "api.call"),
        ("git.push", "api.call"),
        ("org.update_actions_secret", "admin.change"),
        ("repo.create_actions_secret", "admin.change"),
        ("secret_scanning.enable", "admin.change"),
        ("secret_scanning_push_protection.bypass", "admin.change"),
        ("user.login", "login"),
        ("user.failed_login", "auth.fail"),
        ("user.logout", "logout"),
        ("org.sso_response", "login"),
        ("pull_request.create", "api.call"),
        ("workflows.completed_workflow_run", "api.call"),
        ("protected_branch.rejected_ref_update", "api.call"),
        ("repo.destroy", "admin.change"),
        ("hook.create", "admin.change"),
        ("org.add_member", "admin.change"),
        ("unknown.admin_role", "admin.change"),
    ],
)
def test_action_mapping(vendor_type: str, action: str) -> None:
    assert github.action_for(vendor_type) == action


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_lines_become_problems(tmp_path: Path) -> None:
    lines = [
        json.dumps({"action": "repo.create", "actor": "a", "created_at": 1755429342123}),  # 1: ok
        "",  # 2: blank
        "{not json",  # 3
        "[1, 2]",  # 4: JSON, not an object
        json.dumps({"actor": "a", "created_at": 1755429342123}),  # 5: no action
        json.dumps({"action": "repo.create", "created_at": "last tuesday"}),  # 6: bad time
        "{}",  # 7
        json.dumps({"action": "repo.create", "actor": "a", "@timestamp": "2025-08-17T13:15:42+02:00"}),  # 8: ok
    ]
    events, problems = run_path(write(tmp_path, "\n".join(lines) + "\n"))
    assert sorted(events) == [1, 8]
    assert events[8].time == "2025-08-17T11:15:42Z"
    assert [(p.line, p.kind) for p in problems] == [
        (2, "skipped"), (3, "malformed"), (4, "malformed"), (5, "malformed"), (6, "malformed"), (7, "malformed")]
    assert problems[1].reason.startswith("not JSON")
    assert problems[3].reason.startswith("no action")
    assert problems[4].reason.startswith("repo.create: unreadable created_at 'last tuesday'")


def test_truncated_array_keeps_items_before_the_break(tmp_path: Path) -> None:
    text = ARRAY.read_text(encoding="utf-8")
    cut = text.index('"_document_id": "Pq8s')  # inside item 3
    events, problems = run_path(write(tmp_path, text[:cut], "cut.json"))
    assert sorted(events) == [1, 2]
    assert len(problems) == 1 and problems[0].line == 3 and problems[0].kind == "malformed"
    assert problems[0].reason.startswith("JSON array items truncated or broken after array item 2")


def test_single_line_array_and_pretty_objects(tmp_path: Path) -> None:
    items = json.loads(ARRAY.read_text(encoding="utf-8"))
    one_line = write(tmp_path, json.dumps(items), "one.json")
    assert sorted(run_path(one_line)[0]) == list(range(1, 8))
    pretty = write(tmp_path, "".join(json.dumps(i, indent=2) + "\n" for i in items[:3]), "pretty.json")
    assert github.sniff(FileSource(str(pretty)).head()) >= 0.5
    events, problems = run_path(pretty)
    assert problems == [] and sorted(events) == [1, 2, 3] and events[2].action == "data.export"


def test_chunk_keeps_file_line_numbers() -> None:
    # Ingest hands workers runs of lines (splittable JSON lines): numbers must stay those of the file.
    lines = APPOMNI.read_text(encoding="utf-8").splitlines()[2:4]
    events, problems = run(ChunkSource("appomni", 3, lines))
    assert problems == [] and sorted(events) == [3, 4]
    assert events[3].vendor_id == "RDSIX6X7F8WlXCkyaBqtOA"


# ------------------------------------------------------------------------------------------------ sniff


@pytest.mark.parametrize("path", [APPOMNI, ELASTIC, PANTHER, ARRAY], ids=lambda p: p.name)
def test_sniff_claims_every_sample(path: Path) -> None:
    assert github.sniff(FileSource(str(path)).head()) >= 0.5


@pytest.mark.parametrize("line", [OKTA_LINE, VAULT_LINE, NGINX_LINE, GOOGLE_LINE], ids=["okta", "vault", "nginx", "google"])
def test_sniff_rejects_other_vendors(line: str) -> None:
    assert github.sniff([line]) < 0.5
    assert github.sniff(["[", *json.dumps(json.loads(line), indent=2).splitlines()]) < 0.5
