"""`casefile.blast` over the vendor-free toy format: seeds, lineage (logged and inferred), same-secret links,
resource patterns and the revocation set. The demo incident's ground truth is checked in tests/tui/test_blast_cli.py."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from casefile import blast as B
from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from casefile.secrets import fingerprint
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tests.conftest import fake_token

REFRESH = fake_token("stanch-FAKE-refresh-", 32, salt="r")
R_KEY = fingerprint(REFRESH).keys[0]  # sha256:<hex>


def at_hash(key: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(key[7:])[:16]).decode().rstrip("=")


def line(t: str, **kw: object) -> dict[str, object]:
    return {"t": t, **kw}


@pytest.fixture
def case(tmp_path):
    access = [fingerprint(fake_token("stanch-FAKE-access-", 32, salt=str(i))).keys[0] for i in range(3)]
    rows = [
        # the gateway sees the refresh token by its 16-hex prefix, at the token endpoint, from 203.0.113.9
        line("2025-08-10T10:00:00Z", id="g1", keys=[f"sha256/16:{R_KEY[7:23]}"], ip="203.0.113.9",
             res="/oauth2/token", action="api.call"),
        # the IdP logs the access token it minted (by id and at_hash form), not the refresh token
        line("2025-08-10T10:00:02Z", id="i1", subject=["okta-token:AT.one", f"okta-token:hash:{at_hash(access[0])}"],
             ip="203.0.113.9", action="token.refresh"),
        # the IdP also names the refresh token itself on a grant (its hash form) → same secret as the gateway's
        line("2025-08-01T09:00:00Z", id="i0", subject=["okta-token:oarREFRESH", f"okta-token:hash:{at_hash(R_KEY)}"],
             action="token.issue"),
        # the minted access token at the gateway: calls with ids in the path
        *[line(f"2025-08-10T10:0{i}:30Z", id=f"g2{i}", keys=[f"sha256/16:{access[0][7:23]}"], ip="203.0.113.9",
               res=f"/services/data/v60.0/sobjects/Case/500Aa{i}000000001XYZ", action="api.call") for i in range(3)],
        line("2025-08-10T10:05:00Z", id="g3", keys=[f"sha256/16:{access[0][7:23]}"], ip="198.51.100.7",
             res="/secret/data/aws-prod", action="secret.read"),
        # a child minted with the parent named in the log (token exchange, Vault child)
        line("2025-08-10T11:00:00Z", id="x1", keys=[access[0]], subject=[access[1]], action="token.issue"),
        line("2025-08-10T11:01:00Z", id="x2", keys=[access[1]], subject=[access[2]], action="token.issue"),
        # unrelated: another address at the token endpoint at the same time mints nothing for us
        line("2025-08-10T10:00:01Z", id="n1", subject=["okta-token:AT.other"], ip="192.0.2.1", action="token.refresh"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with create_case(tmp_path / "c.stanch") as c:
        ingest(c, [str(path)], "toy-jsonl")
        yield c, access


def test_same_secret_lineage_and_reach(case):
    c, access = case
    b = B.blast(c, R_KEY, as_of="2025-08-11T00:00:00Z")
    roles = {(d["role"], tuple(d["keys"])[0].split(":")[0]) for d in b["credentials"]}
    assert ("seed", "sha256/16") in roles
    assert ("same-secret", "okta-token") in roles  # the IdP's view of the refresh token, by at_hash form
    minted = [e for e in b["lineage"] if e.get("inferred")]
    assert len(minted) == 1 and minted[0]["event"] == "toy:i1"
    # the minted token's gateway view is in reach, and its calls are grouped by pattern
    calls = {(g["action"], g["resource"]): g for g in b["runtime"]["calls"]}
    case_reads = calls[("api.call", "/services/data/v60.0/sobjects/Case/{id}")]
    assert case_reads["count"] == 3 and case_reads["events"] == ["toy:g20", "toy:g22"]  # first and last
    assert b["runtime"]["secrets_read"][0]["path"] == "/secret/data/aws-prod"
    # depth: access[0] → access[1] → access[2] (logged), each one level deeper
    depths = {k: d["depth"] for d in b["credentials"] for k in d["keys"]}
    assert depths[access[1]] == 2 and depths[access[2]] == 3
    shallow = B.blast(c, R_KEY, depth=2)
    assert access[2] not in {k for d in shallow["credentials"] for k in d["keys"]}
    # nothing from the unrelated grant
    assert "okta-token:AT.other" not in {k for d in b["credentials"] for k in d["keys"]}


def test_revocation_set_is_one_item_per_secret_and_skips_the_expired(case):
    c, _ = case
    rs = B.blast(c, R_KEY, as_of="2025-08-11T00:00:00Z")["revocation_set"]
    seed_items = [i for i in rs["items"] if i["reason"] == "the seed credential"]
    assert len(seed_items) == 1 and len(seed_items[0]["credentials"]) == 2  # gateway + IdP views of one secret
    assert all(i["needs_raw_secret"] for i in rs["items"] if i["connector"] is None)


def test_seeds(case, tmp_path):
    c, access = case
    assert B.resolve_seed(c, R_KEY).credential_ids == B.resolve_seed(c, f"sha256/16:{R_KEY[7:23]}").credential_ids
    assert B.resolve_seed(c, "-", raw_token=REFRESH).text.startswith("raw token ")
    assert REFRESH not in repr(B.blast(c, "-", raw_token=REFRESH))
    with pytest.raises(CaseError, match="no credential with that key"):
        B.blast(c, "sha256:" + "0" * 64)
    with pytest.raises(CaseError, match="or client:<issuer>:<id>"):
        B.blast(c, "nonsense")
    with pytest.raises(CaseError, match="matches no credential"):
        B.blast(c, "-", raw_token=fake_token("stanch-FAKE-unknown-"))


@pytest.mark.parametrize(("resource", "pattern"), [
    ("/services/data/v60.0/sobjects/Case/500AahCkNeH4NjgUmh", "/services/data/v60.0/sobjects/Case/{id}"),
    ("/api/v1/users/00u1a2b3c4d5e6f7g8h9/sessions?oauthTokens=true", "/api/v1/users/{id}/sessions"),
    ("/repos/acme/app/issues/1234", "/repos/acme/app/issues/{id}"),
    ("/v1/secret/data/aws-prod", "/v1/secret/data/aws-prod"),
    ("/orders/3f2b8c1e-1111-4aaa-9bbb-0123456789ab", "/orders/{id}"),
    ("ListBuckets", "ListBuckets"),
])
def test_resource_patterns(resource, pattern):
    assert B.resource_pattern(resource) == pattern


def test_same_secret_keys_are_the_at_hash_form_both_ways():
    key = "sha256:" + hashlib.sha256(b"x").hexdigest()
    ((okta, _),) = B.same_secret_keys([key])
    ((back, _),) = B.same_secret_keys([okta])
    assert back == f"sha256/16:{key[7:23]}"
    assert B.same_secret_keys(["okta-token:hash:not-base64!"]) == []


def rollups_match_events(conn) -> None:
    """The rollups ingest keeps equal an aggregate of the events computed from scratch."""
    from casefile.schema import ADDR_FROM_EVENTS, ROLLUP_FROM_EVENTS

    conn.execute("CREATE TEMP TABLE r2 AS SELECT * FROM rollup WHERE 0")
    conn.execute("CREATE TEMP TABLE a2 AS SELECT * FROM rollup_addr WHERE 0")
    conn.execute(ROLLUP_FROM_EVENTS.replace("INSERT INTO rollup ", "INSERT INTO temp.r2 ").split(" ON CONFLICT")[0],
                 (0,))
    conn.execute(ADDR_FROM_EVENTS.replace("INSERT INTO rollup_addr ", "INSERT INTO temp.a2 ").split(" ON CONFLICT")[0],
                 (0,))
    for table, fresh in (("rollup", "temp.r2"), ("rollup_addr", "temp.a2")):
        a = sorted(conn.execute(f"SELECT * FROM {table}"))
        b = sorted(conn.execute(f"SELECT * FROM {fresh}"))
        assert a == b, table
    conn.execute("DROP TABLE temp.r2")
    conn.execute("DROP TABLE temp.a2")


def test_rollups_follow_ingest_and_merges_and_a_window_reads_the_events(case):
    c, access = case
    rollups_match_events(c.conn)  # merges happened during this ingest (the at_hash views of one secret)
    whole = B.blast(c, R_KEY)
    windowed = B.blast(c, R_KEY, since="2025-08-01T00:00:00Z", until="2025-08-31T00:00:00Z")
    strip = [{k: v for k, v in g.items() if k != "events"} for g in whole["runtime"]["calls"]]
    assert strip == [{k: v for k, v in g.items() if k != "events"} for g in windowed["runtime"]["calls"]]
    narrow = B.blast(c, R_KEY, until="2025-08-10T10:00:40Z")
    assert narrow["runtime"]["totals"]["events"] < whole["runtime"]["totals"]["events"]


def test_demo_rollups_match(tmp_path):
    from casefile.case import open_case
    from tui.demo import build_demo

    path = build_demo(tmp_path / "d.stanch", events=3000, seed=5, quiet=True)
    with open_case(path) as c:
        rollups_match_events(c.conn)


def test_a_credential_in_an_event_payload_is_an_exposure_of_its_credential(tmp_path):
    from casefile.audit import verify

    leaked = fake_token("ghp_", 36, salt="payload")
    rows = [
        line("2025-08-10T10:00:00Z", id="p1", keys=["sha256/16:1111111111111111"], ip="203.0.113.9",
             res="/api/notes/42", body=f"deploy with {leaked} please"),
        line("2025-08-10T10:01:00Z", id="p2", keys=["sha256/16:1111111111111111"], res="/api/notes/43"),
    ]
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with create_case(tmp_path / "c.stanch") as c:
        ingest(c, [str(path)], "toy-jsonl")
        (x,) = c.conn.execute("SELECT field, shape, preview, event_id FROM exposures").fetchall()
        assert x[0] == "body" and x[1] == "github-classic-pat" and x[3] == "toy:p1"
        ingest(c, [str(path)], "toy-jsonl")  # a re-ingest adds no second exposure
        assert c.conn.execute("SELECT count(*) FROM exposures").fetchone()[0] == 1
        b = B.blast(c, "sha256/16:1111111111111111")
        (e,) = b["exposure"]
        assert e["matched_by"] == "event payload" and e["read_by"] == ["toy:p1"]
        assert any(i["reason"].startswith("exposed") and i["connector"] == "github" for i in b["revocation_set"]["items"])
        assert not verify(c.conn)[2]
        assert leaked not in "\n".join(c.conn.iterdump())


def test_keys_created_by_the_same_identity_while_the_seed_was_in_use(tmp_path):
    rows = [
        line("2025-08-10T10:00:00Z", id="s1", keys=["sha256/16:2222222222222222"], principal="eve@acme.example",
             res="/api/things"),
        # eve creates an API key with her browser session (another credential) while the seed is in use
        line("2025-08-10T10:30:00Z", id="s2", keys=["session:okta/eve-browser"], principal="eve@acme.example",
             subject=["okta-token:00Tnewkey"], action="token.issue"),
        line("2025-08-10T11:00:00Z", id="s3", keys=["sha256/16:2222222222222222"], principal="eve@acme.example",
             res="/api/things"),
        # someone else's key, and eve's key long after: not in reach
        line("2025-08-10T10:40:00Z", id="s4", keys=["session:okta/bob"], principal="bob@acme.example",
             subject=["okta-token:00Tbob"], action="token.issue"),
        line("2025-09-30T10:40:00Z", id="s5", keys=["session:okta/eve-browser"], principal="eve@acme.example",
             subject=["okta-token:00Tlater"], action="token.issue"),
    ]
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with create_case(tmp_path / "c.stanch") as c:
        ingest(c, [str(path)], "toy-jsonl")
        c.conn.execute("UPDATE credentials SET principal = 'eve@acme.example' WHERE id IN (SELECT credential_id FROM"
                       " credential_keys WHERE key LIKE 'sha256/16:2222%')")
        c.conn.execute("UPDATE credentials SET kind = 'api-key' WHERE id IN (SELECT credential_id FROM credential_keys"
                       " WHERE key LIKE 'okta-token:00T%')")
        b = B.blast(c, "sha256/16:2222222222222222")
        keys = {k for d in b["credentials"] for k in d["keys"]}
        assert "okta-token:00Tnewkey" in keys and "okta-token:00Tbob" not in keys and "okta-token:00Tlater" not in keys
        (edge,) = [e for e in b["lineage"] if e.get("inferred", "").startswith("created by")]
        assert edge["event"] == "toy:s2"
