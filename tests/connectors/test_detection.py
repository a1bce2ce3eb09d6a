"""Auto-detection across every committed fixture: each file is claimed by its own format and no other."""

from __future__ import annotations

from pathlib import Path

import pytest

import connectors  # noqa: F401  (registers every format)
from casefile import formats
from casefile.sources import FileSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

EXPECTED = {
    "nginx/elastic_examples_apache_logs_combined.log": "nginx-combined",
    "nginx/peer-access.jsonl": "nginx-json",
    "okta/appomni_okta_system_log_A.jsonl": "okta-system-log",
    "okta/appomni_okta_system_log_A_array.json": "okta-system-log",
    "okta/elastic_okta_test-okta-system-events_lines1-9.log": "okta-system-log",
    "okta/panther_okta_system_log_A.jsonl": "okta-system-log",
    "vault/elastic_vault_test-audit.log": "vault-audit",
    "vault/openbao-audit.jsonl": "vault-audit",
    "vault/openbao-audit-pretty.json": "vault-audit",
}


def test_every_log_fixture_is_listed():
    logs = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
            if p.suffix in (".log", ".jsonl", ".json") and "peer" not in p.parent.name}
    assert logs == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_detection_picks_the_right_format_with_a_clear_margin(name, expected):
    head = FileSource(str(FIXTURES / name)).head()
    assert formats.detect(head, name).name == expected
    others = [f.name for f in formats.all_formats() if f.name != expected and f.sniff(head) >= 0.5]
    assert others == [], f"{name} is also claimed by {others}"
