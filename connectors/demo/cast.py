"""Who is in the demo incident: the org, its integrations, employees, Vault apps, IPs and every credential.

Raw credential values exist only in memory (the `Cred.raw` field); the log writers use the
fingerprint, tail, Okta id or Vault HMAC. Every credential prefix is assembled at run time so that
no literal in this file looks like a real secret to a repository scanner, and every value carries
`FAKE`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from casefile.secrets import sha256_hex

T = TypeVar("T")
ALNUM = string.ascii_letters + string.digits
TOKEN_BODY = ALNUM + "._"
B32 = string.ascii_uppercase + "234567"
URLSAFE = ALNUM + "-_"

# Prefixes assembled at run time (see module doc).
SF_ORG_PREFIX = "00" + "D"
SF_REFRESH_PREFIX = "5Aep" + "861"
VAULT_SERVICE_PREFIX = "hv" + "s."
AWS_KEY_PREFIX = "AK" + "IA"

# The fixed salt of the demo Vault audit device (`hmac-sha256:` values are keyed with it).
VAULT_AUDIT_SALT = b"stanch-demo-audit-device-file/"

API = "/services/data/v60.0"


def epoch(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    """Seconds since the epoch of a UTC wall time."""
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp())


BASELINE_START = epoch(2025, 7, 18)          # three weeks before the theft window
THEFT_START = epoch(2025, 8, 8)              # GTIG/Salesloft window: Aug 8 - Aug 18
THEFT_END = epoch(2025, 8, 18, 23, 59, 59)
REVOKED_AT = epoch(2025, 8, 20, 15, 0)       # Salesloft + Salesforce revoke every Drift token
DATA_END = epoch(2025, 8, 20, 23, 59, 59)

# --- Published IOCs (incidents.md §1.6) --------------------------------------------------------
IOC_USER_AGENTS = (
    "Salesforce-Multi-Org-Fetcher/1.0",
    "Salesforce-CLI/1.0",
    "python-requests/2.32.4",
    "Python/3.11 aiohttp/3.12.15",
)
IOC_IPS = (
    "208.68.36.90", "44.215.108.109", "154.41.95.2", "176.65.149.100", "179.43.159.198",
    "185.130.47.58", "185.207.107.130", "185.220.101.33", "185.220.101.133", "185.220.101.143",
    "185.220.101.164", "185.220.101.167", "185.220.101.169", "185.220.101.180", "185.220.101.185",
    "192.42.116.20", "192.42.116.179", "194.15.36.117", "195.47.238.83", "195.47.238.178",
)
UA_FETCHER, UA_CLI, UA_REQUESTS, UA_AIOHTTP = IOC_USER_AGENTS
IP_DO, IP_AWS_RECON = IOC_IPS[0], IOC_IPS[1]
TRAP_TOR_IP = "185.220.101.33"                       # used by a legitimate employee, never by the actor
ACTOR_TOR_IPS = tuple(ip for ip in IOC_IPS[2:] if ip != TRAP_TOR_IP)

# --- The victim's own networks (documentation ranges, so nothing here is a real host) --------------
CORP_EGRESS = ("198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13")
CORP_DC = ("198.51.100.40", "198.51.100.41")
HOME_IPS = ("203.0.113.21", "203.0.113.57", "203.0.113.88", "203.0.113.102", "203.0.113.140",
            "203.0.113.163", "203.0.113.199", "203.0.113.230")
DRIFT_AWS = ("192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13")   # Drift's baseline: AWS us-east-1
MKT_AWS = ("192.0.2.40", "192.0.2.41", "192.0.2.42")
CI_RUNNERS = ("192.0.2.200", "192.0.2.201", "192.0.2.202")
VAULT_APP_NET = ("10.20.4.11", "10.20.4.12", "10.20.4.23", "10.20.4.24")

GEO_CORP = {"city": "Denver", "state": "Colorado", "country": "United States", "postalCode": "80202"}
GEO_AWS = {"city": "Ashburn", "state": "Virginia", "country": "United States", "postalCode": "20149"}
SEC_CORP = {"asNumber": 64500, "asOrg": "acme-demo corp", "isp": "acme-demo corp", "domain": "acme.example",
            "isProxy": False}
SEC_HOME = {"asNumber": 64501, "asOrg": "example residential isp", "isp": "example residential isp",
            "domain": None, "isProxy": False}
SEC_AWS = {"asNumber": 14618, "asOrg": "amazon.com, inc.", "isp": "amazon.com, inc.", "domain": "amazonaws.com",
           "isProxy": False}
SEC_DO = {"asNumber": 14061, "asOrg": "digitalocean, llc", "isp": "digitalocean, llc", "domain": None,
          "isProxy": False}
SEC_TOR = {"asNumber": None, "asOrg": None, "isp": None, "domain": None, "isProxy": True}
_TOR_COUNTRIES = ("Germany", "Netherlands", "Switzerland", "Romania", "France")


def ip_context(ip: str) -> tuple[dict, dict]:
    """Okta `geographicalContext` and `securityContext` for an address of the scenario."""
    if ip.startswith(("198.51.100.", "10.")):
        return GEO_CORP, SEC_CORP
    if ip.startswith("203.0.113."):
        return {"city": "Boulder", "state": "Colorado", "country": "United States", "postalCode": "80301"}, SEC_HOME
    if ip.startswith("192.0.2.") or ip == IP_AWS_RECON:
        return GEO_AWS, SEC_AWS
    if ip == IP_DO:
        return {"city": "North Bergen", "state": "New Jersey", "country": "United States",
                "postalCode": "07047"}, SEC_DO
    country = _TOR_COUNTRIES[sum(map(ord, ip)) % len(_TOR_COUNTRIES)]
    return {"city": None, "state": None, "country": country, "postalCode": None}, SEC_TOR


# --- Credentials ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Cred:
    """One credential. `raw` stays in memory; logs carry `fp`/`tail`, `okta_id` or the Vault HMACs."""

    raw: str
    kind: str                  # access | refresh | vault-token | aws-key | password
    owner: str                 # integration, employee or Vault app name
    okta_id: str = ""
    issued: int = 0
    fp: str = ""
    tail: str = ""
    sha: str = ""
    at_hash: str = ""
    accessor: str = ""
    hmac: str = ""
    accessor_hmac: str = ""

    def __post_init__(self) -> None:
        self.sha = sha256_hex(self.raw)
        self.fp = self.sha[:16]
        self.tail = self.raw[-4:]
        digest = hashlib.sha256(self.raw.encode()).digest()
        self.at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def seeded_rng(seed: int, part: str) -> random.Random:
    """The RNG of one part of the scenario: fake data must repeat per seed, so no crypto RNG here."""
    return random.Random(f"stanch-demo:{seed}:{part}")  # noqa: S311


_TABLES: dict[str, bytes] = {}


def rand_str(rng: random.Random, alphabet: str, n: int) -> str:
    """`n` characters of `alphabet` from `rng` (random bytes mapped through a table: fast, deterministic)."""
    table = _TABLES.get(alphabet)
    if table is None:
        table = _TABLES[alphabet] = "".join(alphabet[i % len(alphabet)] for i in range(256)).encode()
    return rng.randbytes(n).translate(table).decode()


def rr(rng: random.Random, lo: int, hi: int) -> int:
    """A number in [lo, hi): cheaper than `randrange` in hot loops."""
    return lo + int(rng.random() * (hi - lo))


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """One element of `seq`: cheaper than `choice` in hot loops."""
    return seq[int(rng.random() * len(seq))]


def vault_hmac(value: str) -> str:
    """What the demo Vault audit device writes for a string value."""
    return "hmac-sha256:" + hmac.new(VAULT_AUDIT_SALT, value.encode(), hashlib.sha256).hexdigest()


class Mint:
    """Fake credential factory over one seeded RNG."""

    def __init__(self, rng: random.Random, org_id: str) -> None:
        self.rng = rng
        self.org_id = org_id

    def s(self, alphabet: str, n: int) -> str:
        return rand_str(self.rng, alphabet, n)

    def access(self, owner: str, issued: int) -> Cred:
        raw = f"{self.org_id}!AQFAKE{self.s(TOKEN_BODY, 90)}"
        return Cred(raw, "access", owner, okta_id="AT." + self.s(URLSAFE, 43), issued=issued)

    def refresh(self, owner: str, issued: int) -> Cred:
        raw = f"{SF_REFRESH_PREFIX}FAKE{self.s(TOKEN_BODY, 76)}"
        return Cred(raw, "refresh", owner, okta_id="oar" + self.s(ALNUM, 17), issued=issued)

    def vault_token(self, owner: str, issued: int) -> Cred:
        raw = f"{VAULT_SERVICE_PREFIX}CAESIFAKE{self.s(URLSAFE, 82)}"
        c = Cred(raw, "vault-token", owner, issued=issued, accessor=self.s(ALNUM, 24))
        c.hmac = vault_hmac(raw)
        c.accessor_hmac = vault_hmac(c.accessor)
        return c

    def aws_key(self, owner: str) -> tuple[Cred, str]:
        key_id = f"{AWS_KEY_PREFIX}FAKE{self.s(B32, 12)}"
        secret = "FAKE" + self.s(ALNUM + "/+", 36)
        return Cred(key_id, "aws-key", owner), secret


# --- The cast ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Integration:
    """A third-party or internal OAuth client calling the Salesforce-like API through the gateway."""

    name: str
    label: str
    user_agent: str
    ips: tuple[str, ...]
    share: float               # of the baseline gateway volume
    authorised_by: str         # employee login whose Salesforce rights the token carries
    client_id: str = ""
    refresh: Cred | None = None
    tokens: list[Cred] = field(default_factory=list)   # access tokens, one per refresh period


@dataclass(slots=True)
class Employee:
    name: str
    login: str
    user_id: str = ""
    home_ip: str = ""
    browser: str = ""
    api_client: str = ""       # OAuth client used for API calls ("" = none)
    api_ua: str = ""
    api_share: float = 0.0


@dataclass(slots=True)
class VaultApp:
    name: str
    auth: str                  # approle | jwt | token
    ips: tuple[str, ...]
    paths: tuple[str, ...]
    policies: tuple[str, ...]
    share: float
    entity_id: str = ""
    static_token: Cred | None = None


BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36 Edg/127.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:129.0) Gecko/20100101 Firefox/129.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
)

DOMAIN = "acme.example"


def make_integrations() -> list[Integration]:
    return [
        Integration("drift-chat-integration", "Drift", "Drift-Salesforce-Connector/3.9.2 (+https://drift.example)",
                    DRIFT_AWS, 0.30, "morgan.lee"),
        Integration("marketing-sync", "Marketing Sync", "MarketingSync/2.8.1 okhttp/4.12.0", MKT_AWS, 0.20,
                    "svc.marketing"),
        Integration("support-portal", "Support Portal", "SupportPortal/5.4.0 Java/17.0.9", CORP_DC, 0.25,
                    "svc.support"),
        Integration("reporting-bi-connector", "Reporting BI", "ReportingBI-Connector/3.1.4 (jdbc)", CORP_DC, 0.05,
                    "svc.reporting"),
    ]


def make_employees() -> list[Employee]:
    return [
        Employee("Morgan Lee", "morgan.lee"),                       # Salesforce admin; connected Drift
        Employee("Dana Ortiz", "dana.ortiz", api_client="ops-scripts", api_ua=UA_AIOHTTP, api_share=0.08),
        Employee("Sam Keller", "sam.keller", api_client="sf-cli", api_ua="sf-cli/2.58.7 (linux-x64) node-v20.17.0",
                 api_share=0.05),
        Employee("Priya Raman", "priya.raman", api_client="sf-cli",
                 api_ua="sf-cli/2.58.7 (darwin-arm64) node-v20.17.0", api_share=0.04),
        Employee("Lee Chen", "lee.chen", api_client="data-workbench", api_ua=BROWSERS[0], api_share=0.03),
        Employee("Alex Novak", "alex.novak"),
        Employee("Jordan Fry", "jordan.fry"),
        Employee("Rita Okafor", "rita.okafor"),
        Employee("Svc Marketing", "svc.marketing"),
        Employee("Svc Support", "svc.support"),
        Employee("Svc Reporting", "svc.reporting"),
    ]


def make_vault_apps() -> list[VaultApp]:
    return [
        VaultApp("billing-exporter", "approle", VAULT_APP_NET[:2], ("secret/data/integrations/aws-prod",),
                 ("default", "billing-exporter"), 0.35),
        VaultApp("etl-runner", "approle", VAULT_APP_NET[2:], ("secret/data/integrations/snowflake-etl",),
                 ("default", "etl-runner"), 0.30),
        VaultApp("ci-github-actions", "jwt", CI_RUNNERS, ("secret/data/ci/deploy-key", "secret/data/ci/npm-publish"),
                 ("default", "ci-deploy"), 0.20),
        # Long-lived service token with a broad policy; a support engineer pasted it into a Case.
        VaultApp("support-tools", "token", ("198.51.100.40",),
                 ("secret/data/support/zendesk-api", "secret/data/support/jira-bot"),
                 ("default", "support-tools"), 0.15),
    ]


@dataclass(slots=True)
class Cast:
    """Everything `generate` needs before it writes a line; `secrets` lists every raw value it made."""

    seed: int
    org_id: str
    auth_server: str
    integrations: list[Integration]
    employees: list[Employee]
    vault_apps: list[VaultApp]
    refresh_period: int
    aws_key: Cred
    aws_secret: str
    snowflake_password: str
    leaked_case: str
    secrets: list[str] = field(default_factory=list)

    def employee(self, login: str) -> Employee:
        return next(e for e in self.employees if e.login == login)

    def integration(self, name: str) -> Integration:
        return next(i for i in self.integrations if i.name == name)

    def vault_app(self, name: str) -> VaultApp:
        return next(a for a in self.vault_apps if a.name == name)


def build_cast(seed: int, refresh_period: int) -> tuple[Cast, Mint]:
    """The people, clients and credentials of seed `seed`. Access tokens rotate every `refresh_period` s."""
    rng = seeded_rng(seed, "cast")
    org_id = SF_ORG_PREFIX + "FAKE" + rand_str(rng, string.ascii_uppercase + string.digits, 8)
    mint = Mint(rng, org_id)
    cast = Cast(
        seed=seed, org_id=org_id, auth_server="aus" + mint.s(ALNUM, 17),
        integrations=make_integrations(), employees=make_employees(), vault_apps=make_vault_apps(),
        refresh_period=refresh_period, aws_key=Cred("x", "aws-key", ""), aws_secret="", snowflake_password="",
        leaked_case="500" + mint.s(ALNUM, 15),
    )
    for i, emp in enumerate(cast.employees):
        emp.user_id = "00u" + mint.s(ALNUM, 17)
        emp.home_ip = HOME_IPS[i % len(HOME_IPS)]
        emp.browser = BROWSERS[i % len(BROWSERS)]
    span = DATA_END - BASELINE_START
    for integ in cast.integrations:
        integ.client_id = "0oa" + mint.s(ALNUM, 17)
        # Authorised on the first morning of the data; the refresh token then lives for the whole period.
        first = BASELINE_START + 9 * 3600 + rng.randrange(3600)
        integ.refresh = mint.refresh(integ.name, first)
        integ.tokens = [mint.access(integ.name, first + k * refresh_period)
                        for k in range(span // refresh_period + 1)]
        cast.secrets.append(integ.refresh.raw)
        cast.secrets.extend(t.raw for t in integ.tokens)
    for app in cast.vault_apps:
        app.entity_id = _uuid(rng)
        if app.auth == "token":
            app.static_token = mint.vault_token(app.name, epoch(2025, 6, 2, 16, 12, 5))
            cast.secrets.append(app.static_token.raw)
    cast.aws_key, cast.aws_secret = mint.aws_key("billing-exporter")
    cast.snowflake_password = "FAKE-Snowfl4ke-" + mint.s(ALNUM, 16)
    cast.secrets += [cast.aws_key.raw, cast.aws_secret, cast.snowflake_password]
    return cast, mint


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
