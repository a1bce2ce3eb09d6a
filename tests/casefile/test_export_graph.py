"""`casefile.export_graph`: the blast radius as BloodHound OpenGraph (validated against the official node, edge and
metadata JSON Schemas in tests/fixtures/bloodhound/), Graphviz DOT, a Mermaid flowchart, and the revocation set as
JSON. Every format succeeds on an empty case and on the demo, from a seed and over the whole case; node ids hold no
`:` and decode back to their keys; hostile text cannot break out of a DOT or Mermaid label; and no raw token the
demo generator made is in any export, raw, URL-encoded or base64-encoded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

import connectors  # noqa: F401  (revokers, object readers, finding rules)
from casefile import export_graph as EG
from casefile import findings
from casefile.case import CaseError, create_case, open_case
from casefile.ingest import ingest
from casefile.secrets import fingerprint
from connectors.demo import _scenario
from tests.casefile import toy  # noqa: F401  (registers the toy format)
from tests.conftest import fake_token
from tui.demo import build_demo

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bloodhound"
DEMO_SEED, DEMO_EVENTS = 11, 3000


# ------------------------------------------------------------------------------------------------ helpers


def schemas() -> dict[str, jsonschema.protocols.Validator]:
    out = {}
    for name in ("node", "edge", "metadata"):
        schema = json.loads((FIXTURES / f"opengraph-{name}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        out[name] = jsonschema.Draft202012Validator(schema)
    return out


def opengraph_errors(payload: dict[str, Any], ours: bool = True) -> list[str]:
    """Every way `payload` breaks the official schemas (each node, each edge, metadata) or the rules the docs give
    only in prose (no `:` in ids, no `tag_` kinds, at most 3 kinds); `ours`: also stanch's own promises (kinds
    prefixed, unique ids, every edge between nodes of the payload)."""
    v = schemas()
    errors: list[str] = []
    if not set(payload) <= {"metadata", "graph"} or set(payload["graph"]) != {"nodes", "edges"}:
        errors.append(f"payload shape: {sorted(payload)}")
    if "metadata" in payload:
        errors += [f"metadata: {e.message}" for e in v["metadata"].iter_errors(payload["metadata"])]
    ids: list[str] = []
    for n in payload["graph"]["nodes"]:
        errors += [f"node {n.get('id')}: {e.message}" for e in v["node"].iter_errors(n)]
        ids.append(n["id"])
        if ":" in n["id"]:
            errors.append(f"node id {n['id']} has a colon")
        if len(n["kinds"]) > 3 or any(k.casefold().startswith("tag_") for k in n["kinds"]):
            errors.append(f"node {n['id']} kinds {n['kinds']}")
        if ours and not all(k.startswith("Stanch") for k in n["kinds"]):
            errors.append(f"node {n['id']} kinds {n['kinds']} not prefixed")
    for e in payload["graph"]["edges"]:
        errors += [f"edge {e.get('kind')}: {x.message}" for x in v["edge"].iter_errors(e)]
        if e["kind"].casefold().startswith("tag_"):
            errors.append(f"edge kind {e['kind']}")
        if ours and (e["kind"] not in EG.EDGE_KINDS or e["start"]["value"] not in ids or e["end"]["value"] not in ids):
            errors.append(f"edge {e['kind']} {e['start']} -> {e['end']}")
    if ours and len(set(ids)) != len(ids):
        errors.append("duplicate node ids")
    return errors


MERMAID_LINE = [
    re.compile(r"^    %% stanch blast-radius graph: \d+ nodes, \d+ edges(; (\d+ more nodes|\d+ more edges|"
               r"\d+ more nodes and \d+ more edges) not shown \(the opengraph export has them all\))?$"),
    re.compile(r'^    n\d+\["(?:[A-Za-z0-9 .,:/_@+=-]|#\d+;|<br/>)*"\]$'),
    re.compile(r"^    n\d+ -->\|[A-Za-z]+\| n\d+$"),
    re.compile(r"^    classDef [a-z]+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}$"),
    re.compile(r"^    class n\d+(?:,n\d+)* [a-z]+$"),
]
DOT_HEAD = ['digraph stanch {', '  graph [rankdir=LR, fontname="Helvetica", fontsize=10];',
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
            '  edge [fontname="Helvetica", fontsize=8];']
DOT_NODE = re.compile(r'^  n\d+ \[label="((?:[^"\\\x00-\x1f]|\\[\\"n])*)", fillcolor="#[0-9a-f]{6}"\];$')
DOT_EDGE = re.compile(r'^  n\d+ -> n\d+ \[label="[A-Za-z]+"\];$')


def check_mermaid(text: str) -> list[str]:
    """Every line is one of the five line shapes the renderer writes (a label that escaped its quotes would not
    match); returns the labels, entity codes decoded."""
    lines = text.split("\n")
    assert lines[0] == "flowchart LR" and lines[-1] == ""
    for line in lines[1:-1]:
        assert any(p.match(line) for p in MERMAID_LINE), line
    labels = [m.group(1) for line in lines if (m := re.match(r'^    n\d+\["(.*)"\]$', line))]
    return [re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), lb).replace("<br/>", "\n") for lb in labels]


def check_dot(text: str) -> list[str]:
    lines = text.split("\n")
    assert lines[0].startswith("// stanch blast-radius graph: ") and lines[1:5] == DOT_HEAD
    assert lines[-2:] == ["}", ""]
    labels = []
    for line in lines[5:-2]:
        m = DOT_NODE.match(line)
        assert m or DOT_EDGE.match(line), line
        if m:
            labels.append(re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), m.group(1)))
    return labels


def sorted_everywhere(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(sorted_everywhere(v) for v in value.values())
    if isinstance(value, list):
        return all(sorted_everywhere(v) for v in value)
    return True


def encodings(secret: str) -> set[str]:
    b = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(b).decode().rstrip("="), base64.urlsafe_b64encode(b).decode().rstrip("=")}


def export_all(case: Any, out: Path, seed: str | None = None, **kw: Any) -> dict[str, tuple[int, Path]]:
    done = {}
    for fmt in EG.GRAPH_FORMATS:
        path = out / f"{seed or 'case'}.{fmt}"
        done[fmt] = (EG.export_graph(case, fmt, path, seed=seed, **kw), path)
        assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    return done


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The demo incident with one findings run (what flags credentials for the whole-case export)."""
    d = tmp_path_factory.mktemp("demo")
    path = build_demo(d / "demo.stanch", events=DEMO_EVENTS, seed=DEMO_SEED, quiet=True, truth_dir=d / "truth")
    truth = json.loads((d / "truth" / "truth.json").read_text())
    with open_case(path) as case:
        # before any findings run nothing is flagged: the whole-case graph is the case node alone
        assert list(EG.build_graph(case, EG.radius(case)).nodes) == [f"case:{case.meta()['created_at']}"]
        findings.run(case)
    return path, truth


# ------------------------------------------------------------------------------------------------ tests


def test_the_validator_accepts_the_upstream_example_and_rejects_what_the_docs_forbid() -> None:
    """The schema check is real: BloodHound's own minimal payload passes, and each documented mistake fails."""
    minimal = json.loads((FIXTURES / "opengraph-minimal.json").read_text())
    assert opengraph_errors(minimal, ours=False) == []
    bad = json.loads(json.dumps(minimal))
    bad["graph"]["nodes"][0]["id"] = "sha256:ab12"
    bad["graph"]["nodes"][1]["properties"]["objectid"] = "x"
    bad["graph"]["edges"][0]["kind"] = "knows-of"
    bad["metadata"] = {"source_kind": "Stanch", "extra": 1}
    errors = " | ".join(opengraph_errors(bad, ours=False))
    assert "colon" in errors and "objectid" in errors and "does not match" in errors and "extra" in errors


def test_every_format_succeeds_on_an_empty_case(tmp_path: Path) -> None:
    with create_case(tmp_path / "empty.stanch", title='INC "7" <b>') as case:
        done = export_all(case, tmp_path / "out")
        with pytest.raises(CaseError, match="no credential"):
            EG.export_graph(case, "opengraph", tmp_path / "never.json", seed="sha256:" + "0" * 64)
        with pytest.raises(ValueError, match="one of opengraph, dot, mermaid, revocation-set"):
            EG.export_graph(case, "graphml", tmp_path / "never.graphml")
    assert not (tmp_path / "never.json").exists() and not (tmp_path / "never.graphml").exists()
    og = json.loads(done["opengraph"][1].read_text())
    assert opengraph_errors(og) == []
    assert [n["kinds"] for n in og["graph"]["nodes"]] == [["StanchCase"]] and og["graph"]["edges"] == []
    assert og["graph"]["nodes"][0]["properties"]["seeds_run"] == 0
    assert check_dot(done["dot"][1].read_text()) == ['case\nINC "7" <b>']
    assert check_mermaid(done["mermaid"][1].read_text()) == ['case\nINC "7" <b>']
    rs = json.loads(done["revocation-set"][1].read_text())
    assert done["revocation-set"][0] == 0 and rs["items"] == [] and rs["seeds"] == []
    assert rs["not_listed"] == {"expired": 0, "revoked": 0} and rs["stanch_version"]


def test_node_ids_round_trip_and_hold_no_colon() -> None:
    keys = ["sha256:" + "ab" * 32, "sha256/16:0123456789abcdef", "okta-token:hash:nWe2x_k6-X", "jti:https://i/:x",
            "vault-accessor:default:8vcA", "secret:secret/data/a b+c", "principal:m%3Ae@x", "app:é✓", "record::",
            "%", "%%3A", ":", "a/b?c#d&e=f"]
    ids = [EG.encode_id(k) for k in keys]
    assert all(":" not in i for i in ids) and len(set(ids)) == len(ids)
    assert [EG.decode_id(i) for i in ids] == keys
    assert EG.encode_id("sha256:ab12") == "sha256%3Aab12"


def test_demo_from_the_stolen_refresh_token(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, truth = demo
    stolen = truth["compromised_credentials"]
    with open_case(path) as case:
        done = export_all(case, tmp_path, seed=stolen[0]["key"])
        r = EG.radius(case, stolen[0]["key"])
    doc = r.docs[0]
    og = json.loads(done["opengraph"][1].read_text())
    assert opengraph_errors(og) == []
    assert done["opengraph"][0] == len(og["graph"]["nodes"])
    nodes = {EG.decode_id(n["id"]): n for n in og["graph"]["nodes"]}
    assert all(EG.decode_id(n["id"]) == n["properties"]["key"] for n in og["graph"]["nodes"])
    # every credential of the radius is a node, found by any of its keys, with what a BloodHound user needs
    creds = {n["properties"]["credential"]: n["properties"] for n in nodes.values()
             if n["kinds"] == ["StanchCredential"]}
    assert set(creds) == {c["id"] for c in doc["credentials"]}
    keys = {k for p in creds.values() for k in p.get("keys", [])}
    for c in stolen:
        assert c["key"] in keys or c["key16"] in keys, c["why"]
    seed = next(p for p in creds.values() if p["role"] == "seed")
    assert {"kind", "issuer", "client", "principal", "first_seen", "last_used", "severity", "status"} <= set(seed)
    assert seed["in_revocation_set"] is True and "objectid" not in seed
    kinds = {e["kind"] for e in og["graph"]["edges"]}
    assert {"StanchSeed", "StanchMinted", "StanchIssuedTo", "StanchActsAs", "StanchReadObject", "StanchCalled",
            "StanchExposes", "StanchReadRecord", "StanchCanRevoke"} <= kinds
    # each exposed secret hangs off the record it was found in, and that record off a credential in reach
    exposed = [n for n in nodes.values() if n["kinds"] == ["StanchCredential"] and n["properties"]["role"] == "exposed"]
    assert exposed and len(exposed) == len({x["credential"] for x in doc["exposure"]})
    for n in exposed:
        into = [e for e in og["graph"]["edges"] if e["end"]["value"] == n["id"] and e["kind"] == "StanchExposes"]
        assert into and any(e["kind"] == "StanchReadRecord" and e["end"]["value"] == into[0]["start"]["value"]
                            for e in og["graph"]["edges"])
    # the pictures show the same graph (all of it: it is under the picture cap)
    dot_labels = check_dot(done["dot"][1].read_text())
    mm_labels = check_mermaid(done["mermaid"][1].read_text())
    assert len(dot_labels) == len(mm_labels) == len(nodes) == done["dot"][0] == done["mermaid"][0]
    assert dot_labels == mm_labels
    # the revocation set is blast's, with the seed, window, as_of and version, keys sorted, byte-stable
    text = done["revocation-set"][1].read_text()
    rs = json.loads(text)
    assert rs["items"] == json.loads(orjson.dumps(doc["revocation_set"]["items"]))
    assert rs["seed"]["input"] == stolen[0]["key"] and rs["as_of"] == doc["revocation_set"]["as_of"]
    assert rs["window"] == {"since": None, "until": None} and rs["depth"] == 3 and rs["stanch_version"]
    assert sorted_everywhere(rs) and done["revocation-set"][0] == len(rs["items"])
    with open_case(path) as case:
        EG.export_graph(case, "revocation-set", tmp_path / "again.json", seed=stolen[0]["key"])
        EG.export_graph(case, "opengraph", tmp_path / "again.og", seed=stolen[0]["key"])
    assert (tmp_path / "again.json").read_text() == text
    assert (tmp_path / "again.og").read_bytes() == done["opengraph"][1].read_bytes()


def test_demo_whole_case_is_the_union_of_the_flagged_radii(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, truth = demo
    with open_case(path) as case:
        done = export_all(case, tmp_path)
        stolen = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key IN (?, ?)",
                                   (truth["compromised_credentials"][0]["key"],
                                    truth["compromised_credentials"][0]["key16"])).fetchone()[0]
        capped = EG.radius(case, max_seeds=2)
    og = json.loads(done["opengraph"][1].read_text())
    assert opengraph_errors(og) == []
    case_node = og["graph"]["nodes"][0]["properties"]
    assert case_node["mode"] == "case" and case_node["seeds_run"] > 2 and case_node["seeds_over_cap"] == 0
    flagged = [e for e in og["graph"]["edges"] if e["kind"] == "StanchFlagged"]
    assert flagged and all(e["properties"].get("severity") or e["properties"].get("plans") for e in flagged)
    rs = json.loads(done["revocation-set"][1].read_text())
    assert sorted_everywhere(rs) and rs["seeds"] and all(i["seeds"] for i in rs["items"])
    listed = [c for i in rs["items"] for c in i["credentials"]]
    assert stolen in listed and len(listed) == len(set(listed))  # one item per secret across the radii
    assert len(capped.docs) == 2 and capped.seeds_over_cap == case_node["seeds_run"] - 2
    # the pictures are capped; they say so, and draw no edge to a node they dropped
    text = done["mermaid"][1].read_text()
    if len(og["graph"]["nodes"]) > EG.MAX_PICTURE_NODES:
        assert "more nodes" in text and done["mermaid"][0] == EG.MAX_PICTURE_NODES
    assert len(re.findall(r"-->", text)) <= EG.MAX_PICTURE_EDGES
    for fmt, check in (("dot", check_dot), ("mermaid", check_mermaid)):
        check(done[fmt][1].read_text())


def test_no_raw_secret_in_any_export(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, truth = demo
    # An AWS access key *id* is an identifier, not a secret (its secret key is): the case keys CloudTrail's
    # credentials by it (`aws-key:AKIA…`, ARCHITECTURE §3), as tests/tui/test_demo.py says.
    secrets = [s for s in _scenario(DEMO_SEED, DEMO_EVENTS).secrets if not (s.startswith("AKIA") and len(s) == 20)]
    assert len(secrets) > 10
    with open_case(path) as case:
        files = [p for _, p in export_all(case, tmp_path / "case").values()]
        files += [p for _, p in export_all(case, tmp_path / "seed", seed=truth["compromised_credentials"][0]["key"]
                                           ).values()]
    blob = b"\n".join(p.read_bytes() for p in files)
    text = blob.decode()
    assert len(blob) > 100_000
    leaked = [s[:8] + "…" for s in secrets for form in encodings(s) if form in text]
    assert leaked == []


HOSTILE = ['"]; evil[label="x', "</script><script>alert(1)</script>", "line\nbreak", "a --> b", "x|y` %%c",
           "#quot; \\N \\\" back\\"]


@pytest.fixture
def hostile_case(tmp_path: Path) -> tuple[Path, str]:
    """Principals, a client and resources that are each a way out of a label."""
    token = fake_token("stanch-FAKE-hostile-", 32)
    key = fingerprint(token).keys[0]
    child = fingerprint(fake_token("stanch-FAKE-child-", 32)).keys[0]
    rows = [{"t": f"2025-08-10T10:0{i}:00Z", "id": f"h{i}", "keys": [key], "client": HOSTILE[1], "principal": h,
             "res": f"/api/{h}", "action": "secret.read" if i % 2 else "api.call"} for i, h in enumerate(HOSTILE)]
    rows.append({"t": "2025-08-10T11:00:00Z", "id": "m1", "keys": [key], "subject": [child], "action": "token.issue",
                 "principal": HOSTILE[0]})
    log = tmp_path / "hostile.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = tmp_path / "h.stanch"
    with create_case(path, title=HOSTILE[0] + HOSTILE[2]) as case:
        ingest(case, [str(log)], "toy-jsonl")
    return path, key


def test_hostile_text_cannot_break_the_pictures(hostile_case: tuple[Path, str], tmp_path: Path) -> None:
    path, key = hostile_case
    with open_case(path) as case:
        done = export_all(case, tmp_path, seed=key)
    dot, mermaid = done["dot"][1].read_text(), done["mermaid"][1].read_text()
    dot_labels, mm_labels = check_dot(dot), check_mermaid(mermaid)
    # the text survives as text: each hostile string is in some label, a newline shown as a space
    for h in HOSTILE:
        shown = h.replace("\n", " ")
        assert any(shown in lb for lb in dot_labels), h
        assert any(shown in lb for lb in mm_labels), h
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)  # the DOT text with every quoted string emptied
    assert "evil" not in outside and "script" not in outside and "-->" not in outside
    assert "<" not in mermaid.replace("<br/>", "") and "script" in mermaid
    og = json.loads(done["opengraph"][1].read_text())
    assert opengraph_errors(og) == []
    names = {n["properties"]["displayname"] for n in og["graph"]["nodes"]}
    assert any(HOSTILE[0] in n for n in names)
    if shutil.which("dot"):  # Graphviz, where installed, reads the file and keeps every node
        svg = subprocess.run(["dot", "-Tsvg", str(done["dot"][1])], capture_output=True, text=True, check=True).stdout
        assert svg.count('class="node"') == len(dot_labels)


def test_a_window_bounds_the_runtime_part(hostile_case: tuple[Path, str], tmp_path: Path) -> None:
    path, key = hostile_case
    with open_case(path) as case:
        whole = EG.build_graph(case, EG.radius(case, key))
        none = EG.build_graph(case, EG.radius(case, key, since="2025-08-11T00:00:00Z"))
        some = EG.build_graph(case, EG.radius(case, key, since="2025-08-10T10:02:30Z", until="2025-08-10T10:03:30Z"))
    count = lambda g, k: sum(1 for e in g.edges.values() if e.kind == k)  # noqa: E731
    assert count(whole, "StanchCalled") == 3 and count(whole, "StanchReadSecret") == 3
    assert count(none, "StanchCalled") == count(none, "StanchReadSecret") == 0
    assert count(some, "StanchReadSecret") == 1 and count(some, "StanchCalled") == 0
    assert count(whole, "StanchMinted") == 1 and count(none, "StanchMinted") == 1  # lineage is not windowed


def test_picture_cap_drops_nodes_and_their_edges(hostile_case: tuple[Path, str]) -> None:
    path, key = hostile_case
    with open_case(path) as case:
        g = EG.build_graph(case, EG.radius(case, key))
    text, n = EG.render_mermaid(g, cap=3)
    assert n == 3 and f"{len(g.nodes) - 3} more nodes not shown" in text
    labels = check_mermaid(text)
    assert len(labels) == 3
    ids = set(re.findall(r"^    (n\d+)\[", text, re.M))
    assert all(a in ids and b in ids for a, b in re.findall(r"^    (n\d+) -->\|\w+\| (n\d+)$", text, re.M))
    dot, n = EG.render_dot(g, cap=3)
    assert n == 3 and len(check_dot(dot)) == 3
    text, n = EG.render_mermaid(g, max_edges=2)
    assert n == len(g.nodes) and f"; {len(g.edges) - 2} more edges not shown" in text
    assert len(re.findall(r"-->", text)) == 2 and len(check_mermaid(text)) == len(g.nodes)
    assert "Seed" in text  # the edges kept are the lineage ones, not the calls
