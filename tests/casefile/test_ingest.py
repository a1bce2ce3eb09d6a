"""Streaming ingest: provenance, stable ids, re-ingest, bad lines, gzip, stdin, directories, identity, redaction."""

from __future__ import annotations

import gzip
import io
import sys

import orjson
import pytest

from casefile import formats
from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from tests.casefile import toy
from tests.conftest import fake_token

FP16 = "sha256/16:" + "ab" * 8
FULL = "sha256:" + "ab" * 8 + "cd" * 24


def _line(**kw):
    d = {"t": "2025-08-17T11:15:42Z", **kw}
    return orjson.dumps(d).decode()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_provenance_bad_lines_and_summary(tmp_path, case_path):
    f = _write(tmp_path / "a.jsonl", [_line(keys=[FP16]), "", "{broken", _line(ip="192.0.2.1"), "also broken"])
    with create_case(case_path) as case:
        [s] = ingest(case, [str(f)], format_name="toy-jsonl")
        assert (s.events_added, s.malformed, s.skipped) == (2, 2, 1)
        assert [(p["line"], p["kind"]) for p in s.problems] == [(2, "skipped"), (3, "malformed"), (5, "malformed")]
        src = case.conn.execute("SELECT path, format, sha256, status, parser_version FROM sources").fetchone()
        assert src[0] == str(f) and src[1] == "toy-jsonl" and len(src[2]) == 64 and src[3] == "done"
        lines = [r[0] for r in case.conn.execute("SELECT line FROM events ORDER BY line")]
        assert lines == [1, 4]
        assert {r[0] for r in case.conn.execute("SELECT source_id FROM events")} == {s.source_id}


def test_reingest_adds_nothing_and_repeated_identical_lines_are_all_kept(tmp_path, case_path):
    same = _line(ip="198.51.100.7", res="/api/report")
    f = _write(tmp_path / "access.jsonl", [same, same, same, _line(ip="198.51.100.8")])
    with create_case(case_path) as case:
        [first] = ingest(case, [str(f)], format_name="toy-jsonl")
        assert first.events_added == 4  # three identical requests are three real requests
        [again] = ingest(case, [str(f)], format_name="toy-jsonl")
        assert again.already_ingested and again.events_added == 0
        # the same lines in another file (a copy) dedupe by stable id: still 4 events
        copy = _write(tmp_path / "copy.jsonl", [same, same, same, _line(ip="198.51.100.8")] + [_line(ip="203.0.113.9")])
        [c] = ingest(case, [str(copy)], format_name="toy-jsonl")
        assert (c.events_added, c.duplicates) == (1, 4)
        assert case.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5


def test_vendor_ids_are_the_stable_id(tmp_path, case_path):
    f = _write(tmp_path / "v.jsonl", [_line(id="evt-1"), _line(id="evt-1", ip="192.0.2.9"), _line(id="evt-2")])
    with create_case(case_path) as case:
        [s] = ingest(case, [str(f)], format_name="toy-jsonl")
        assert s.events_added == 2 and s.duplicates == 1
        ids = [r[0] for r in case.conn.execute("SELECT id FROM events ORDER BY id")]
        assert ids == ["toy:evt-1", "toy:evt-2"]


def test_gzip_directories_and_stdin(tmp_path, case_path, monkeypatch):
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    _write(d / "one.jsonl", [_line(id="1")])
    with gzip.open(d / "sub" / "two.jsonl.gz", "wt") as fh:
        fh.write(_line(id="2") + "\n")
    _write(d / ".hidden", [_line(id="3")])
    with create_case(case_path) as case:
        summaries = ingest(case, [str(d)], format_name="toy-jsonl")
        assert sorted(s.events_added for s in summaries) == [1, 1]
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((_line(id="4") + "\n").encode())))
        [s] = ingest(case, ["-"])  # detected from the first line
        assert s.path == "<stdin>" and s.format == "toy-jsonl" and s.events_added == 1


def test_detection_failure_names_the_file_and_the_flag(tmp_path, case_path):
    f = _write(tmp_path / "mystery.log", ["this is not any format we know"])
    with create_case(case_path) as case:
        [s] = ingest(case, [str(f)])
        assert s.error and str(f) in s.error and "--format" in s.error
        assert "toy-jsonl" in s.error  # the candidates are listed
    with create_case(tmp_path / "x.stanch") as case, pytest.raises(CaseError, match="unknown format"):
        ingest(case, [str(f)], format_name="nope")


def test_tied_detection_lists_candidates(tmp_path, case_path):
    twin = formats.register(formats.Format("toy-twin", "toy", "tie", toy.parse, toy.sniff))
    try:
        f = _write(tmp_path / "a.jsonl", [_line()])
        with create_case(case_path) as case:
            [s] = ingest(case, [str(f)])
            assert "toy-jsonl" in (s.error or "") and "toy-twin" in (s.error or "")
    finally:
        formats._REGISTRY.pop(twin.name)


def test_keys_of_one_secret_merge_and_prefix_keys_link(tmp_path, case_path):
    f = _write(tmp_path / "k.jsonl", [
        _line(id="a", keys=[FP16]),                          # a gateway saw the 16-hex prefix
        _line(id="b", keys=["okta-token:00T1"]),             # the IdP named the token by id
        _line(id="c", keys=[FULL]),                          # a full fingerprint: links to the prefix key
        _line(id="d", keys=["okta-token:00T1", FULL]),       # evidence both name one secret: merge
        _line(id="e", keys=["okta-token:00T2"], client="app-1"),
        _line(id="f", keys=["okta-token:00T3"], client="app-1"),  # same client is NOT the same credential
    ])
    with create_case(case_path) as case:
        ingest(case, [str(f)], format_name="toy-jsonl")
        creds = {r[0]: r[1] for r in case.conn.execute("SELECT key, credential_id FROM credential_keys")}
        assert creds[FP16] == creds[FULL] == creds["okta-token:00T1"]
        assert creds["okta-token:00T2"] != creds["okta-token:00T3"]
        assert case.conn.execute("SELECT count(*) FROM credentials").fetchone()[0] == 3
        used = {r[0] for r in case.conn.execute("SELECT credential_id FROM events WHERE id IN "
                                                "('toy:a','toy:b','toy:c','toy:d')")}
        assert used == {creds[FULL]}


def test_raw_secrets_are_redacted_but_the_event_links_by_key(tmp_path, case_path):
    tok = fake_token(salt="canary")
    gh = "ghp_" + "CANARY" * 6 + "FAKE"
    record = {"t": "2025-08-17T11:15:42Z", "headers": {"Authorization": f"Bearer {tok}"},
              "url": f"/cb?code=FAKEcode123&access_token={tok}&state=ok", "note": f"pasted {gh} in a ticket",
              "client_secret": "FAKE-client-secret-value"}
    f = _write(tmp_path / "r.jsonl", [orjson.dumps(record).decode()])
    with create_case(case_path) as case:
        ingest(case, [str(f)], format_name="toy-jsonl")
        raw = case.conn.execute("SELECT raw, credential_id FROM events").fetchone()
        stored = orjson.loads(raw[0])
        assert stored["headers"]["Authorization"].startswith("[redacted sha256:")
        assert "access_token=[redacted sha256:" in stored["url"] and "state=ok" in stored["url"]
        assert "[redacted sha256:" in stored["note"]
        assert stored["client_secret"].startswith("[redacted sha256:")
        from casefile.secrets import fingerprint

        key = fingerprint(tok).keys[0]
        cid = case.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (key,)).fetchone()[0]
        assert raw[1] == cid  # the Authorization header is the credential this request used
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(case_path.name))
    for secret in (tok, gh, "FAKEcode123", "FAKE-client-secret-value"):
        assert secret.encode() not in blob


def test_unreadable_time_is_a_malformed_line_not_a_crash(tmp_path, case_path):
    f = _write(tmp_path / "t.jsonl", ['{"t": "yesterday-ish"}', _line(id="ok")])
    with create_case(case_path) as case:
        [s] = ingest(case, [str(f)], format_name="toy-jsonl")
        assert s.events_added == 1 and s.malformed == 1
        assert s.problems[0]["line"] == 1 and "time" in s.problems[0]["reason"]


def test_progress_is_reported_per_batch_and_at_the_end(tmp_path, case_path, monkeypatch):
    import casefile.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "CHUNK_LINES", 10)
    f = _write(tmp_path / "p.jsonl", [_line(id=str(i)) for i in range(25)])
    seen = []
    with create_case(case_path) as case:
        ingest(case, [str(f)], format_name="toy-jsonl", progress=lambda name, n: seen.append(n))
        batches = case.conn.execute("SELECT count(*) FROM audit WHERE operation = 'ingest.batch'").fetchone()[0]
    assert seen == [10, 20, 25]
    assert batches == 3  # one transaction, and one audit entry, per batch


def test_a_parser_that_dies_mid_file_loses_nothing_stored_and_a_rerun_completes(tmp_path, case_path, monkeypatch):
    import casefile.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "CHUNK_LINES", 10)
    f = _write(tmp_path / "d.jsonl", [_line(id=str(i)) for i in range(30)])

    def dying(src):
        for item in toy.parse(src):
            if item.line == 25:
                raise RuntimeError("parser bug")
            yield item

    flaky = formats.register(formats.Format("toy-dying", "toy", "dies at line 25", dying, lambda h: 0.0))
    try:
        with create_case(case_path) as case:
            [s] = ingest(case, [str(f)], format_name="toy-dying")
            assert s.error and "stopped after 24 events" in s.error
            assert case.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 24
            assert case.conn.execute("SELECT status FROM sources").fetchone()[0] == "failed"
            [again] = ingest(case, [str(f)], format_name="toy-jsonl")  # not skipped: the first try failed
            assert (again.events_added, again.duplicates) == (6, 24)
            from casefile.audit import verify

            assert verify(case.conn)[2] == []
    finally:
        formats._REGISTRY.pop(flaky.name)


def test_ordinary_words_are_not_mistaken_for_credentials(tmp_path, case_path):
    # "token" in a scope list, a session id field and a zip code are not secrets; a GitHub-style
    # `Authorization: token X` header is.
    rec = {"t": "2025-08-17T11:15:42Z", "scope": "openid token offline_access", "externalSessionId": "trs1234567890",
           "uri": "/geo?zipcode=12345", "hdr": "Authorization: token FAKEghtoken1234567890"}
    f = _write(tmp_path / "w.jsonl", [orjson.dumps(rec).decode()])
    with create_case(case_path) as case:
        ingest(case, [str(f)], format_name="toy-jsonl")
        stored = orjson.loads(case.conn.execute("SELECT raw FROM events").fetchone()[0])
    assert stored["scope"] == "openid token offline_access"
    assert stored["externalSessionId"] == "trs1234567890" and stored["uri"] == "/geo?zipcode=12345"
    assert stored["hdr"].startswith("Authorization: token [redacted sha256:")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_gz_keeps_what_was_read_and_says_how_to_read_the_rest(tmp_path, case_path, monkeypatch, workers):
    """Found by coverage-guided fuzzing (tests/fuzz/coverage.py): gzip's errors escaped as a traceback. Logs copied
    mid-rotation end in a truncated gzip stream: the events before the cut are stored, the source is `failed`
    (so a re-run of a repaired file is not skipped), and the error names the file and the fix."""
    import casefile.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "CHUNK_LINES", 100)
    monkeypatch.setattr(pipeline_mod, "PARALLEL_MIN_BYTES", 0)
    data = gzip.compress(("\n".join(_line(id=str(i), pad="x" * 40) for i in range(3000)) + "\n").encode())
    cut = tmp_path / "rotated.jsonl.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    # toy JSON lines that worker processes may parse in chunks (the lines are read here: a .gz is not cut by bytes)
    split = formats.register(formats.Format("toy-split", "toy", "splittable toy", toy.parse, lambda h: 0.0,
                                            splittable=formats.json_lines))
    with create_case(case_path) as case:
        try:
            [s] = ingest(case, [str(cut)], format_name=split.name, workers=workers)
        finally:
            formats._REGISTRY.pop(split.name)
        assert s.workers == workers
        assert s.error is not None and "\n" not in s.error
        assert s.error.startswith(f"{cut}: the file ends before its gzip stream does (truncated)")
        assert f"zcat {cut} > " in s.error and f"the {s.events_added} events before it are stored" in s.error
        stored = case.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert 0 < stored == s.events_added < 3000
        assert case.conn.execute("SELECT status FROM sources").fetchone()[0] == "failed"
        from casefile.audit import verify

        assert verify(case.conn)[2] == []


def test_a_file_with_gzip_magic_that_is_not_gzip_is_a_one_line_error(tmp_path, case_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8bnot gzip at all\n")
    with create_case(case_path) as case:
        [s] = ingest(case, [str(bad)])
        assert s.error == (f"{bad}: the file is not valid gzip: Unknown compression method; re-fetch it, or ingest "
                           f"what can be read: `zcat {bad} > {tmp_path / 'bad'}.log`")
        assert case.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 0
