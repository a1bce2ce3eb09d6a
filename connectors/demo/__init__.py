"""The bundled demo incident: a seeded, deterministic Salesloft-Drift-style token theft in vendor log formats.

Scenario (modelled on incidents.md §1, UNC6395 / GRUB1, August 2025)
--------------------------------------------------------------------
A company ("acme-demo") fronts its Salesforce-like API with an nginx gateway that introspects
bearer tokens against an Okta custom authorization server and logs `ir_json` lines (a token's
SHA-256 prefix `token_fp` and last four characters, never the token). Four OAuth integrations
call the API from their own addresses with their own user agents, each with a long-lived refresh
token and access tokens rotated by refresh: `drift-chat-integration` (authorised by the Salesforce
admin, so it carries admin reach; calls from AWS), `marketing-sync`, `support-portal` and
`reporting-bi-connector`. Employees sign in to Okta, and four of them use the API with their own
tokens. Apps read their secrets from Vault (file audit device, HMAC'd tokens and values).

From 18 July 2025 the data is normal business. Between 8 and 18 August 2025 the Drift refresh
token, stolen from the vendor, is refreshed from the published IOC addresses with the published
IOC user agents (§1.6), and the minted access tokens are used for schema and `COUNT()` recon, a
user dump, Bulk API 2.0 query jobs over Account/Contact/Case/User/Opportunity that are deleted
after download, a concurrent sweep of Case records, and the Cloudflare-style 11:11-11:15 Case
export from DigitalOcean on 17 August. A support Case held a pasted Vault service token; on 16 and
18 August it is replayed from IOC addresses to read `secret/data/integrations/aws-prod` (an AWS
key) and the Snowflake ETL credential. On 20 August the Drift tokens are revoked in Okta and the
connector's calls start failing.

Traps, benign and listed in the truth file: an employee's tooling sends the IOC user agent
`Python/3.11 aiohttp/3.12.15` from corporate addresses; an employee uses the IOC Tor exit
185.220.101.33 for normal calls; the reporting integration runs `SELECT COUNT()` probes and a bulk
job every night.

Files: `gateway.jsonl`, `okta.jsonl`, `vault_audit.jsonl` in `out_dir`, sorted by time. The
ground truth (`truth.json`) is written only to `truth_dir`, for tests; no rule may read it. Raw
credential values exist only in memory (`_scenario(seed).secrets` exposes them to tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from casefile.secrets import sha256_hex
from connectors.demo.attack import Attack, Loot
from connectors.demo.baseline import TRAP_AIOHTTP, TRAP_COUNT, TRAP_TOR, Baseline, Budget
from connectors.demo.cast import BASELINE_START, DATA_END, Cast, build_cast, seeded_rng, vault_hmac
from connectors.demo.emit import Emitter

__all__ = ["DemoFiles", "generate"]

INCIDENT = "salesloft-drift-2025 (incidents.md §1)"
DEFAULT_EVENTS = 50_000
MIN_EVENTS = 2000   # below this the fixed parts (the actor, daily logins) would overshoot the total


@dataclass(frozen=True, slots=True)
class DemoFiles:
    """Paths written by `generate` and the line count of each file (`malicious`, `total` too)."""

    gateway: Path
    okta: Path
    vault: Path
    truth: Path | None
    counts: dict[str, int]
    cases: Path | None = None  # the Cases the actor read, as the responder exports them (for `ingest-data`)
    vault_lookups: Path | None = None  # the responder's lookup of the Vault token found in a Case (`vault-token`)


@dataclass(slots=True)
class _Scenario:
    cast: Cast
    emitter: Emitter
    loot: Loot
    events: int

    @property
    def secrets(self) -> list[str]:
        """Every raw credential value the scenario made (tests check none reaches a file)."""
        return self.cast.secrets


def _scenario(seed: int, events: int = DEFAULT_EVENTS) -> _Scenario:
    """Build the whole incident in memory: cast, actor, then normal business up to `events` lines."""
    if events < MIN_EVENTS:
        raise ValueError(f"events={events}: the demo needs at least {MIN_EVENTS} events")
    scale = min(3.0, max(0.2, math.sqrt(events / DEFAULT_EVENTS)))
    # Okta token grants take about 5% of the lines: that sets how often the integrations refresh.
    grants_per_client = max(30, 0.05 * events / 4)
    period = int(min(86400, max(1800, (DATA_END - BASELINE_START) / grants_per_client))) // 60 * 60
    cast, mint = build_cast(seed, period)
    em = Emitter(cast, seeded_rng(seed, "ids"))
    loot = Attack(cast, em, seeded_rng(seed, "attack"), mint, scale).run()
    rest = max(0, events - len(em.gateway) - len(em.okta) - len(em.vault))
    budget = Budget(gateway=len(em.gateway) + int(rest * 0.76), okta=len(em.okta) + int(rest * 0.12),
                    vault=len(em.vault) + int(rest * 0.12))
    Baseline(cast, em, seeded_rng(seed, "baseline"), mint).run(budget)
    return _Scenario(cast, em, loot, events)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truth(sc: _Scenario, seed: int) -> dict:
    cast, em, loot = sc.cast, sc.emitter, sc.loot
    drift = cast.integration("drift-chat-integration")
    assert drift.refresh is not None
    creds: list[dict] = [{
        "key": f"sha256:{drift.refresh.sha}", "key16": f"sha256/16:{drift.refresh.fp}",
        "okta_token_id": drift.refresh.okta_id, "client": drift.name, "kind": "refresh",
        "why": "Drift refresh token stolen from the vendor; refreshed from IOC addresses with IOC user agents",
    }]
    for tok, ip in loot.minted:
        creds.append({
            "key": f"sha256:{tok.sha}", "key16": f"sha256/16:{tok.fp}", "okta_token_id": tok.okta_id,
            "client": drift.name, "kind": "access",
            "why": f"access token minted by the actor from the stolen refresh token at {ip}; used for recon/exfil",
        })
    vt = cast.vault_app("support-tools").static_token
    assert vt is not None
    creds.append({
        "key": f"sha256:{vt.sha}", "key16": f"sha256/16:{vt.fp}", "okta_token_id": None,
        "client": "vault:support-tools", "kind": "vault-token", "vault_hmac": vt.hmac,
        "vault_accessor_hmac": vt.accessor_hmac,
        "why": f"Vault service token pasted in Case {cast.leaked_case}; replayed from IOC addresses",
    })
    found = f"Case {cast.leaked_case} (Description, read by the actor on 2025-08-15 and 2025-08-18)"
    exposed = [
        {"key": f"sha256:{cast.aws_key.sha}", "kind": "aws-key", "found_in": found,
         "vault_path": "secret/data/integrations/aws-prod", "vault_hmac": vault_hmac(cast.aws_key.raw)},
        {"key": f"sha256:{vt.sha}", "kind": "vault-token", "found_in": found, "vault_path": None,
         "vault_hmac": vt.hmac},
        {"key": f"sha256:{sha256_hex(cast.snowflake_password)}",
         "kind": "password", "found_in": "secret/data/integrations/snowflake-etl (read with the leaked Vault token)",
         "vault_path": "secret/data/integrations/snowflake-etl", "vault_hmac": vault_hmac(cast.snowflake_password)},
    ]
    return {
        "seed": seed,
        "incident": INCIDENT,
        "events": sc.events,
        "window": {"start": _iso(em.first_bad), "end": _iso(em.last_bad)},
        "compromised_credentials": creds,
        "malicious_events": em.malicious,
        "objects_read": loot.objects,
        "exposed_secrets": exposed,
        "traps": [{"what": what, "events": em.traps.get(what, [])} for what in (TRAP_AIOHTTP, TRAP_TOR, TRAP_COUNT)],
    }


def generate(out_dir: Path, *, events: int = DEFAULT_EVENTS, seed: int = 7, truth_dir: Path | None = None) -> DemoFiles:
    """Write the demo incident's `gateway.jsonl`, `okta.jsonl` and `vault_audit.jsonl` into `out_dir`.

    About `events` lines in total; the same `seed` gives byte-identical files. `truth.json` (the
    ground truth, for tests) goes only to `truth_dir`, never into `out_dir`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sc = _scenario(seed, events)
    em = sc.emitter
    files = {"gateway": out_dir / "gateway.jsonl", "okta": out_dir / "okta.jsonl", "vault": out_dir / "vault_audit.jsonl"}
    counts = {
        "gateway": em.gateway.write(files["gateway"]),
        "okta": em.okta.write(files["okta"]),
        "vault": em.vault.write(files["vault"]),
    }
    counts["total"] = counts["gateway"] + counts["okta"] + counts["vault"]
    cases = out_dir / "salesforce_cases.csv"
    counts["cases"] = _write_cases(sc.cast, seed, cases)
    lookups = out_dir / "vault_token_lookup.jsonl"
    counts["vault_lookups"] = _write_vault_lookups(sc.cast, lookups)
    counts["malicious"] = len(em.malicious)
    truth_path = None
    if truth_dir is not None:
        truth_dir = Path(truth_dir)
        truth_dir.mkdir(parents=True, exist_ok=True)
        truth_path = truth_dir / "truth.json"
        truth_path.write_bytes(orjson.dumps(_truth(sc, seed), option=orjson.OPT_INDENT_2) + b"\n")
    return DemoFiles(gateway=files["gateway"], okta=files["okta"], vault=files["vault"], truth=truth_path,
                     counts=counts, cases=cases, vault_lookups=lookups)


def _write_vault_lookups(cast: Cast, path: Path) -> int:
    """What the responder learns about the Vault token found in the Case, in the `vault-token` format: line 1 as
    `vault token lookup -format=json <token>` prints it (with `id`, the token, which stanch fingerprints and
    drops), line 2 as `stanch pull` of the Vault connector writes it (with the accessor's HMAC from
    `sys/audit-hash`). Their shared accessor joins the Case's token to the audit log's HMAC'd token."""
    tok = cast.vault_app("support-tools").static_token
    if tok is None:
        return 0
    base = {"accessor": tok.accessor, "creation_time": tok.issued, "creation_ttl": 0, "display_name": "token-support-tools",
            "entity_id": "", "expire_time": None, "explicit_max_ttl": 0, "issue_time": _iso(tok.issued * 1_000_000), "meta": None,
            "num_uses": 0, "orphan": True, "path": "auth/token/create", "policies": ["default", "support-tools"],
            "renewable": False, "ttl": 0, "type": "service"}
    lines = [{"request_id": "00000000-0000-4000-8000-00000000c11e", "data": {**base, "id": tok.raw}},
             {"data": {**base, "audit_hmac_accessor": tok.accessor_hmac}}]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return len(lines)


_SUBJECTS = ("Login issue after password change", "Invoice shows wrong VAT", "Export to CSV times out",
             "Cannot add a seat", "SSO redirect loop", "Refund request", "API limits question",
             "Webhook retries piling up", "Dashboard slow on Mondays", "Contract renewal")


def _write_cases(cast: Cast, seed: int, path: Path) -> int:
    """What a responder exports after seeing the actor read Cases: the Case records (Id, CaseNumber, Subject,
    Description). One of them holds the pasted support-tools Vault token and the billing AWS key."""
    import csv

    rng = seeded_rng(seed, "cases")
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    vault_token = cast.vault_app("support-tools").static_token
    pasted = vault_token.raw if vault_token else ""
    leaked = (f"Support tools cannot reach Vault since the upgrade. The token we use is {pasted} and the billing "
              f"export runs with AWS key {cast.aws_key.raw} / {cast.aws_secret}. Can you check the policy?")
    rows = []
    for n in range(60):
        case_id = "500" + "".join(rng.choice(alnum) for _ in range(15))
        rows.append((case_id, f"{10_400 + n:08d}", rng.choice(_SUBJECTS),
                     "Customer reports the issue again; steps to reproduce attached."))
    rows.insert(23, (cast.leaked_case, "00010423", "Support tools integration failing", leaked))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("Id", "CaseNumber", "Subject", "Description"))
        w.writerows(rows)
    return len(rows)
