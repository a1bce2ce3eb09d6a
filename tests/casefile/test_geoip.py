"""Offline geolocation from a MaxMind-format database the responder points to; never online; vendor fields win.

The database is written by the test with mmdb-writer (documentation prefixes, made-up values), read back
with MaxMind's own reader library.
"""

from __future__ import annotations

import orjson
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from casefile.case import CaseError, create_case
from casefile.ingest import ingest
from tests.casefile import toy  # noqa: F401  (registers toy-jsonl)
from tui.cli import main


@pytest.fixture
def mmdb(tmp_path):
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    w.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NL"}, "city": {"names": {"en": "Amsterdam"}},
                                                 "autonomous_system_number": 64500})
    path = tmp_path / "test-city.mmdb"
    w.to_db_file(str(path))
    return path


def test_geoip_fills_only_what_the_vendor_left_empty(tmp_path, case_path, mmdb):
    lines = [
        {"t": "2025-08-17T11:15:42Z", "id": "a", "ip": "203.0.113.7"},
        {"t": "2025-08-17T11:15:43Z", "id": "b", "ip": "198.51.100.9"},  # not in the database
    ]
    f = tmp_path / "g.jsonl"
    f.write_text("\n".join(orjson.dumps(x).decode() for x in lines) + "\n")
    with create_case(case_path) as case:
        ingest(case, [str(f)], format_name="toy-jsonl", geoip=[str(mmdb)])
        rows = dict((r[0], r[1:]) for r in case.conn.execute("SELECT id, country, city, asn FROM events"))
        start = orjson.loads(case.conn.execute(
            "SELECT details FROM audit WHERE operation = 'ingest.start'").fetchone()[0])
    assert rows["toy:a"] == ("NL", "Amsterdam", "64500")
    assert rows["toy:b"] == (None, None, None)
    assert start["geoip"][0]["type"] == "GeoLite2-City" and len(start["geoip"][0]["sha256"]) == 64


def test_vendor_geo_is_kept(tmp_path, case_path, mmdb):
    # The Okta parser reads the vendor's own geographicalContext and ASN: the database must not replace them.
    rec = {"uuid": "u-1", "published": "2025-08-17T11:15:42.000Z", "eventType": "user.session.start",
           "actor": {"id": "00u1", "type": "User", "alternateId": "a@example.com"},
           "client": {"ipAddress": "203.0.113.7", "geographicalContext": {"country": "France", "city": "Paris"}},
           "securityContext": {"asNumber": 64999}, "outcome": {"result": "SUCCESS"}}
    f = tmp_path / "okta.jsonl"
    f.write_text(orjson.dumps(rec).decode() + "\n")
    import connectors  # noqa: F401

    with create_case(case_path) as case:
        ingest(case, [str(f)], geoip=[str(mmdb)])
        assert case.conn.execute("SELECT country, city, asn FROM events").fetchone() == ("France", "Paris", "64999")


def test_a_file_that_is_not_a_maxmind_db_is_a_one_line_error(tmp_path, case_path, capsys):
    bad = tmp_path / "not.mmdb"
    bad.write_text("hello")
    with create_case(case_path) as case, pytest.raises(CaseError, match="not a readable MaxMind DB"):
        ingest(case, [str(bad)], geoip=[str(bad)])
    log = tmp_path / "x.jsonl"
    log.write_text('{"t": "2025-08-17T11:15:42Z"}\n')
    assert main(["ingest", str(case_path), str(log), "--geoip", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--geoip" in err and ".mmdb" in err
