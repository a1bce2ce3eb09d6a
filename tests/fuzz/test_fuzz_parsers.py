"""The CI slice of the parser fuzzer (`python -m tests.fuzz --full` is the full run; see tests/fuzz/__init__.py
for the properties): fixed seeds, a few hundred inputs per format family, no hypothesis example database.

Also deterministic cases for each item of issue 12's hostile-input list that applies to parsers, fed to every
registered format, and regression tests for what the fuzzer found.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, cast

import pytest

import connectors  # noqa: F401  (registers every format)
from casefile import formats
from casefile.pipeline import ChunkSource
from casefile.prepare import P_COLUMNS, P_CRED_KEYS, prepare
from casefile.records import CredentialRef, Event, Parsed, Problem
from casefile.redact import redact_keys
from casefile.sources import BytesSource
from casefile.timeutil import TimeError, to_utc_iso
from tests import fuzz
from tests.fuzz import strategies as S

SEED = fuzz.env_seed()
SIZE = fuzz.sizes(full=False)


def _report(stats: fuzz.Stats) -> str:
    lines = [f"{stats.family}: {stats.violations[k]} x {k}: " + " | ".join(v) for k, v in stats.samples.items()]
    return "\n".join(lines + [f"kept inputs: {stats.written[:5]}"])


def test_every_format_is_seeded_and_every_family_has_seeds() -> None:
    seeded = {s.format for s in S.seeds()}
    assert {f.name for f in fuzz.shipped_formats()} <= seeded
    for family in S.FAMILIES:
        assert S.seeds_of(family), family


@pytest.mark.parametrize("family", S.FAMILIES)
def test_mutated_fixtures_never_crash_and_every_line_is_reported(family: str, tmp_path: Path) -> None:
    stats = fuzz.run_mutations(family, SIZE["mutations"], SEED, tmp_path, big=SIZE["big"])
    assert stats.inputs == SIZE["mutations"] + SIZE["big"]
    assert stats.planted > 0 and stats.events > 0 and stats.problems > 0
    assert stats.crashes == 0 and not stats.violations, _report(stats)


@pytest.mark.parametrize("family", S.FAMILIES)
def test_hypothesis_records_never_crash_and_every_line_is_reported(family: str, tmp_path: Path) -> None:
    stats = fuzz.run_hypothesis(family, SIZE["hypothesis"], SEED, tmp_path)
    assert stats.inputs >= SIZE["hypothesis"]
    assert stats.crashes == 0 and not stats.violations, _report(stats)


@pytest.mark.parametrize("family", S.FAMILIES)
def test_mutated_files_ingest_into_a_case_that_verifies_and_holds_no_planted_credential(family: str, tmp_path: Path) -> None:
    result = fuzz.ingest_round(family, SIZE["ingest"], SEED, tmp_path, workers_share=0.0)
    assert result.files == SIZE["ingest"]
    assert result.errors == [] and result.tampers == [] and result.leaks == [] and result.mismatches == []


# ---------------------------------------------------------------------------------------------- hostile inputs

_ROW = b'2025-08-17T11:15:42.123Z,"a",b,"c"\n'
HOSTILE = {
    "ansi escapes": b'{"msg": "\\u001b[31mred\\u001b[0m\\u001b]0;pwned\\u0007"}\n\x1b[2J\x1b[H raw escape line\n',
    "rich markup": b'{"actor": "[bold red]alert[/]", "ua": "[link=file:///etc/passwd]x[/link]"}\n[red]text[/red]\n',
    "bidi controls": '{"user": "evil\u202etxt.exe", "ip": "\u2066203.0.113.7\u2069"}\n\u202e line\n'.encode(),
    "1 MB line": b"A" * S.MB + b"\n" + b'{"a": "' + b"x" * S.MB + b'"}\n',
    "JSON 10,000 deep": S.deep_json(S.DEEP, "array") + b"\n" + S.deep_json(S.DEEP, "object") + b"\n",
    "JSON 300 deep (orjson reads it, cannot write it)": S.deep_json(300, "object") + b"\n",
    "array 10,000 deep": b'[{"a": ' + S.deep_json(S.DEEP, "object") + b"}]\n",
    "invalid UTF-8": b"".join(S.INVALID_UTF8) + b"\n" + b'{"a": "\xff\xfe", "b": "\xed\xa0\x80"}\n',
    "lone surrogate escape": b'{"a": "\\ud800"}\n[{"a": "\\udc00"}]\n',
    "CSV formula injection": b"Date,Actor Display Name,Event Type\n=cmd|' /C calc'!A0,+1+1,@SUM(1)\n" + _ROW,
    "NUL and lone CR": b'{"a": 1}\x00\r{"b": 2}\r\n\x00\n',
    "huge numbers": b'{"status": 99999999999999999999999, "bytes": "184467440737095516160", "n": 1e999}\n',
    # found by tests/fuzz/coverage.py: gzip's errors escaped every parser (a BadGzipFile traceback)
    "gzip magic, not gzip": b"\x1f\x8bnot gzip at all\n",
    "truncated gzip": gzip.compress(b'{"a": 1}\n' * 5000)[:200],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_reported_not_raised_by_every_format(name: str) -> None:
    data = HOSTILE[name]
    stats = fuzz.Stats("hostile")
    for fmt in fuzz.shipped_formats():
        fuzz.check(fmt, data, stats, "text")
    assert stats.crashes == 0 and not stats.violations, _report(stats)


def test_json_too_deep_to_store_is_named_as_such_by_every_json_format() -> None:
    """The full fuzz run found "unreadable Kong log entry (TypeError)" and the like: orjson's encode error (a
    TypeError) for a record nested past the 255 levels it writes, caught by each parser's defence in depth. The
    reason now says what is wrong with the line."""
    line = b'{"time": "2025-08-17T11:15:42Z", "deep": ' + S.deep_json(300, "object") + b"}\n"
    reasons = {}
    for fmt in fuzz.shipped_formats():
        for item in fmt.parse(BytesSource("deep.jsonl", line)):
            if isinstance(item, Problem) and "nested" in item.reason:
                reasons[fmt.name] = item.reason
            elif isinstance(item, Problem):
                assert "Error" not in item.reason, (fmt.name, item.reason)
    assert {"keycloak-events", "haproxy-json", "nginx-json"} <= set(reasons), reasons
    assert all("nested too deeply" in r for r in reasons.values())


# ---------------------------------------------------------------------------------------------- regressions


def _token() -> str:
    return S.canaries()[0]


def test_a_credential_in_any_canonical_column_is_redacted() -> None:
    token = _token()
    ev = Event(time="2025-08-17T11:15:42Z", vendor="nginx", action="api.call", raw=f"{token} did things",
               principal=token, client=f"x {token}", user_agent=f"curl {token}", vendor_type=token,
               vendor_id=f"id:{token}:1", request_id=token, session_id=token, method=token,
               credential=CredentialRef(keys=("okta-token:x",), principal=token, client=token, scopes=token))
    row = prepare(Parsed(1, ev), "nginx-combined")
    assert isinstance(row, list)
    assert not [v for v in row[P_COLUMNS:] if isinstance(v, str) and token in v]
    assert token not in repr(row)


def test_a_credential_key_never_splits_into_other_keys_nor_keeps_a_credential() -> None:
    token = _token()
    victim = "sha256:" + "ab" * 32
    ref = CredentialRef(keys=(f"jti:realm x {victim} {token}:id",))
    row = prepare(Parsed(1, Event(time="2025-08-17T11:15:42Z", vendor="keycloak", action="login", raw={},
                                  credential=ref)), "keycloak-events")
    assert isinstance(row, list)
    keys = row[P_CRED_KEYS].split(" ")
    assert len(keys) == 1 and keys[0].startswith("jti:realm%20x%20") and token not in keys[0]


def test_a_credential_used_as_a_json_key_is_redacted() -> None:
    token = _token()
    red, found = redact_keys({"a": {f"x {token} y": "v"}, "b": 1})
    assert token not in repr(red) and found
    assert list(red) == ["a", "b"]
    # as ingest stores it: a Vault audit record's request data keys are chosen by whoever held the token
    raw = {"type": "request", "request": {"data": {token: "hmac-sha256:ab", "password": "x"}}}
    row = prepare(Parsed(1, Event(time="2025-08-17T11:15:42Z", vendor="vault", action="secret.write", raw=raw)),
                  "vault-audit")
    assert isinstance(row, list) and token not in repr(row)


def test_a_problem_reason_quoting_a_credential_is_stored_redacted() -> None:
    from casefile.pipeline import stored_reason

    token = _token()
    assert token not in stored_reason(f"unreadable time {token!r}")
    assert stored_reason("unreadable time 'yesterday'") == "unreadable time 'yesterday'"


def test_records_nested_past_what_orjson_writes_are_malformed_not_raised() -> None:
    for name in ("github-audit", "oidc-provider-events", "salesforce-eventlog-json", "okta-system-log"):
        fmt = formats.get(name)
        assert fmt is not None
        stats = fuzz.Stats("regression")
        out = fuzz.check(fmt, b'{"action": "a.b", "x": ' + S.deep_json(300, "object") + b"}\n", stats, "jsonl")
        assert out.crash is None and out.malformed == 1, (name, _report(stats))


def test_a_time_that_is_a_json_list_or_object_is_not_a_time() -> None:
    values: list[Any] = [[], {}, ["2025-01-01"], {"t": 1}]
    for value in values:
        with pytest.raises(TimeError):
            to_utc_iso(value)


def test_huge_counts_are_dropped_not_stored() -> None:
    ev = Event(time="2025-08-17T11:15:42Z", vendor="nginx", action="api.call", raw="x", status=cast(Any, "9" * 30),
               bytes=2**64, rows=-(2**63))
    row = prepare(Parsed(1, ev), "nginx-combined")
    assert isinstance(row, list)
    assert -(2**63) in row and 2**64 not in row


def test_json_lines_of_a_file_chunk_keep_the_file_s_line_numbers() -> None:
    # Parallel ingest hands each worker a run of lines starting deep in the file (casefile.pipeline.ChunkSource).
    from casefile.pipeline import ChunkSource

    for s in S.seeds_of("jsonl"):
        fmt = formats.get(s.format)
        assert fmt is not None
        lines = [ln.decode() for ln in s.lines if ln.strip()][:4]
        if not (fmt.splittable and fmt.splittable(lines)):
            continue
        got = [item.line for item in fmt.parse(ChunkSource("chunk", 8001, lines))]
        assert got and min(got) >= 8001, (s.path, got)


def test_a_chunk_starting_with_a_broken_line_is_still_read_as_json_lines() -> None:
    """Found by the fuzzer: a chunk of a splittable JSON-lines file (parallel ingest) was re-detected by the parser
    from its own first line; one starting with a broken line was read as CSV (Entra) or as a JSON array (GitHub,
    Google, Kong, Keycloak, Okta, Salesforce, CloudTrail), and its good records became Problems."""
    checked = set()
    for seed in S.seeds_of("jsonl"):
        fmt = formats.get(seed.format)
        assert fmt is not None
        lines = [ln.decode() for ln in seed.lines if ln.strip()]
        if fmt.splittable is None or not fmt.splittable(lines[:20]):
            continue
        record = next((ln for ln in lines if any(isinstance(i, Parsed) for i in fmt.parse(ChunkSource("s", 1, [ln])))),
                      None)
        if record is None:
            continue
        for broken in ("[broken {", "{ broken", "Date,Actor,Event Type"):
            items = list(fmt.parse(ChunkSource("chunk", 8001, [broken, record])))
            got = {(i.line, type(i).__name__) for i in items}
            assert got == {(8001, "Problem"), (8002, "Parsed")}, (seed.path, broken, items[:3])
        checked.add(seed.format)
    assert len(checked) >= 10 and {"entra-signin", "github-audit", "okta-system-log"} <= checked, checked


@pytest.mark.parametrize("family", S.FAMILIES)
def test_mutated_files_given_to_ingest_data_are_read_or_reported(family: str, tmp_path: Path) -> None:
    """`stanch ingest-data` reads attacker-reachable data (CSV, JSON, text) with its own reader: mutated fixtures
    and the big inputs (1 MB lines, 10,000-deep JSON) never raise, every summary is consistent, and a planted
    canary is found (as a fingerprint) or the file was unreadable, never stored."""
    import random

    from casefile.case import create_case
    from casefile.data import ingest_data

    rng = random.Random(f"{SEED}:data:{family}")
    mut = S.Mutator(rng)
    pool = S.seeds_of(family)
    token = S.canaries()[0]
    paths = []
    for i in range(SIZE["ingest"] * 8):
        s = rng.choice(pool)
        data, _ = mut.mutate(mut.sample(s))
        if i % 2:
            data = (S.plant(data, family, token, rng) or data) if i % 4 == 1 else mut.big(s, S.BIG_KINDS[i % len(
                S.BIG_KINDS)])
        path = tmp_path / f"in-{i}{'.csv' if family == 'csv' else '.json' if family != 'text' else '.txt'}"
        path.write_bytes(data)
        paths.append(path)
    with create_case(tmp_path / "c.stanch") as case:
        out = ingest_data(case, [str(p) for p in paths])
        assert len(out) == len(paths)
        for summary in out:
            assert summary.records >= 0 and summary.unreadable >= 0 and summary.exposures >= 0
            assert all("\n" not in p["reason"] for p in summary.problems)
        dump = "\n".join(case.conn.iterdump())
        assert token not in dump
