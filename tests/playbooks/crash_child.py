"""`python -m tests.playbooks.crash_child CASE PLAN VAULT_URL`: apply an approved plan against an OpenBao dev server
(connector `bao`, the dev root token), without verifying. tests/playbooks/test_peers.py SIGKILLs it mid-apply."""

from __future__ import annotations

import sys

from casefile.case import open_case
from connectors.config import ConnectorSettings
from playbooks import engine
from tests.connectors.test_vault import ROOT_TOKEN


def main(case_path: str, plan_id: str, url: str) -> None:
    settings = {"bao": ConnectorSettings(name="bao", kind="vault", url=url, concurrency=16)}
    with open_case(case_path, analyst="responder") as case:
        engine.apply(case, int(plan_id), {}, engine.RunOptions(settings=settings, connector_secrets={"bao": ROOT_TOKEN},
                                                                verify=False))


if __name__ == "__main__":
    main(*sys.argv[1:4])
