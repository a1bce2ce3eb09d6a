"""The actor's part: stolen Drift refresh token used from IOC addresses, Aug 8 - Aug 18 2025.

Modelled on incidents.md §1.4-1.6: a test from AWS, schema and `COUNT()` recon, Bulk API 2.0 query
jobs for Account/Contact/Case/User/Opportunity deleted after download, a concurrent sweep of Case
records (hunting for keys in the text), the Cloudflare-style 11:11-11:15 Case export from
DigitalOcean, and finally a Vault token found in a Case used to read the AWS and Snowflake
credentials. Every line has the same format and token shapes as normal business; only what an
attacker controls differs (address, user agent, URIs, timing, volume).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from connectors.demo.baseline import soql, vault_payloads
from connectors.demo.cast import (
    ACTOR_TOR_IPS,
    ALNUM,
    API,
    IP_AWS_RECON,
    IP_DO,
    UA_AIOHTTP,
    UA_CLI,
    UA_FETCHER,
    UA_REQUESTS,
    Cast,
    Cred,
    Mint,
    epoch,
    rand_str,
    rr,
    vault_hmac,
)
from connectors.demo.emit import Emitter

US = 1_000_000
OBJECTS = ("Account", "Contact", "Case", "User", "Opportunity")


@dataclass(slots=True)
class Loot:
    """What the truth file needs to know about the actor's run."""

    minted: list[tuple[Cred, str]] = field(default_factory=list)    # (access token, minted from IP)
    objects: list[str] = field(default_factory=list)
    vault_used: bool = False


class Attack:
    def __init__(self, cast: Cast, em: Emitter, rng: random.Random, mint: Mint, scale: float) -> None:
        self.cast, self.em, self.rng, self.mint, self.scale = cast, em, rng, mint, scale
        self.drift = cast.integration("drift-chat-integration")
        self.loot = Loot()
        self.t = 0
        self.ip = ""
        self.ua = ""
        self.tok: Cred | None = None

    # --- primitives -----------------------------------------------------------------------------
    def _at(self, y: int, mo: int, d: int, h: int, mi: int, s: int = 0, jitter: int = 0) -> None:
        self.t = (epoch(y, mo, d, h, mi, s) + (self.rng.randrange(jitter) if jitter else 0)) * US

    def _wait(self, lo: float, hi: float) -> None:
        self.t += int((lo + self.rng.random() * (hi - lo)) * US)

    def session(self, ip: str, ua: str) -> None:
        """Start a session: refresh the stolen Drift refresh token from `ip`; Okta logs the grant."""
        assert self.drift.refresh is not None
        self.ip, self.ua = ip, ua
        rng = self.rng
        self.em.gw(self.t, ip, "POST", "/services/oauth2/token", 200, ua, self.drift.refresh,
                   rr(rng, 1400, 1600), round(0.05 + rng.random() * 0.1, 3), bad=True)
        tok = self.mint.access(self.drift.name, self.t // US)
        self.cast.secrets.append(tok.raw)
        self.em.token_grant(self.t + 2000, tok, client_id=self.drift.client_id,
                            emp=self.cast.employee(self.drift.authorised_by), ip=ip, ua=ua,
                            grant_type="refresh_token", scopes="api refresh_token offline_access", bad=True)
        self.loot.minted.append((tok, ip))
        self.tok = tok
        self._wait(1, 4)

    def call(self, method: str, uri: str, status: int, nbytes: int, gap: tuple[float, float] = (0.5, 6)) -> None:
        assert self.tok is not None
        rt = round(0.02 + self.rng.random() * 0.2 + nbytes / 25_000_000, 3)
        self.em.gw(self.t, self.ip, method, uri, status, self.ua, self.tok, nbytes, rt, bad=True)
        self._wait(*gap)

    def counts(self, objects: tuple[str, ...]) -> None:
        for obj in objects:
            self.call("GET", soql(f"SELECT COUNT() FROM {obj}"), 200, rr(self.rng, 28, 34), gap=(8, 50))

    def bulk(self, obj: str, pages: int, delete_at: int = 0) -> None:
        """Bulk API 2.0 query job: create, poll, download every page, then delete the job."""
        rng = self.rng
        job = "750" + rand_str(rng, ALNUM, 15)
        # The SOQL of the job travels in the POST body, which the gateway does not log.
        self.call("POST", f"{API}/jobs/query", 201, rr(rng, 380, 420), gap=(2, 6))
        for _ in range(rr(rng, 3, 7)):
            self.call("GET", f"{API}/jobs/query/{job}", 200, rr(rng, 560, 620), gap=(4, 12))
        locator = ""
        for _ in range(max(1, pages)):
            self.call("GET", f"{API}/jobs/query/{job}/results?{locator}maxRecords=50000", 200,
                      rr(rng, 8_000_000, 45_000_000), gap=(3, 15))
            locator = f"locator={rng.randrange(10**8):08d}&"
        self.t = max(self.t, delete_at)
        self.call("DELETE", f"{API}/jobs/query/{job}", 204, 0, gap=(1, 5))
        if obj not in self.loot.objects:
            self.loot.objects.append(obj)

    # --- the story ----------------------------------------------------------------------------------
    def run(self) -> Loot:
        rng, s = self.rng, self.scale
        tor = list(ACTOR_TOR_IPS)
        rng.shuffle(tor)
        pages = max(1, round(3 * s))

        # Aug 8: first test of the stolen token from AWS.
        self._at(2025, 8, 8, 14, 2, jitter=600)
        self.session(IP_AWS_RECON, UA_CLI)
        self.call("GET", "/services/data/", 200, rr(rng, 2000, 2400))
        self.call("GET", f"{API}/limits", 200, rr(rng, 6000, 7000))
        self.call("GET", f"{API}/sobjects/", 200, rr(rng, 400_000, 520_000))

        # Aug 9: schema and size recon over Tor.
        self._at(2025, 8, 9, 3, 17, jitter=900)
        self.session(tor[0], UA_FETCHER)
        self.call("GET", f"{API}/sobjects/", 200, rr(rng, 400_000, 520_000))
        for obj in OBJECTS:
            self.call("GET", f"{API}/sobjects/{obj}/describe/", 200, rr(rng, 80_000, 300_000))
        self.call("GET", soql("SELECT Id, Name, OrganizationType, InstanceName, IsSandbox FROM Organization LIMIT 1"),
                  200, rr(rng, 380, 460))
        self.counts(OBJECTS)
        self.call("GET", f"{API}/limits/", 200, rr(rng, 6000, 7000))

        # Aug 12: recon again from AWS; user dump.
        self._at(2025, 8, 12, 16, 40, jitter=1200)
        self.session(IP_AWS_RECON, UA_CLI)
        self.counts(("Account", "Opportunity", "User", "Case"))
        self.call("GET", soql("SELECT Id, Username, Email, FirstName, LastName, Name, Title, CompanyName, Department, "
                              "Division, Phone, MobilePhone, IsActive, LastLoginDate FROM User WHERE IsActive = true "
                              "ORDER BY LastLoginDate DESC NULLS LAST LIMIT 20"), 200, rr(rng, 18_000, 26_000))

        # Aug 13-16: bulk exports with job deletion, from rotating Tor exits.
        plan = ((13, ("Account", "Contact")), (14, ("User", "Opportunity")), (15, ("Case",)), (16, ("Contact", "Case")))
        for k, (day, objs) in enumerate(plan):
            self._at(2025, 8, day, 1 + 5 * k, 5, jitter=3000)
            self.session(tor[1 + k], UA_AIOHTTP if k % 2 else UA_FETCHER)
            self.counts(objs)
            for obj in objs:
                self.bulk(obj, pages)
            if day == 15:
                self.case_sweep()

        # Aug 17 11:11-11:15: the Cloudflare-style Case export from DigitalOcean; job deleted at 11:15:42.
        self._at(2025, 8, 17, 11, 11, 0, jitter=20)
        self.session(IP_DO, UA_REQUESTS)
        self.counts(("Case",))
        self.t = max(self.t, epoch(2025, 8, 17, 11, 12, 0) * US)
        self.bulk("Case", 1, delete_at=epoch(2025, 8, 17, 11, 15, 42) * US)

        # Aug 18: last pass; re-reads the Case that held the Vault token.
        self._at(2025, 8, 18, 9, 30, jitter=1800)
        self.session(tor[5], UA_FETCHER)
        self.call("GET", f"{API}/limits/", 200, rr(rng, 6000, 7000))
        self.bulk("Contact", 1)
        self.call("GET", f"{API}/sobjects/Case/{self.cast.leaked_case}", 200, rr(rng, 6000, 12000))

        self.vault()
        return self.loot

    def case_sweep(self) -> None:
        """aiohttp-concurrent reads of Case records and their comments, then paged SOQL over Case text."""
        rng, s = self.rng, self.scale
        ids = ["500" + rand_str(rng, ALNUM, 15) for _ in range(max(20, round(1200 * s)))]
        ids.insert(len(ids) // 3, self.cast.leaked_case)
        self.ua = UA_AIOHTTP
        for i, case in enumerate(ids):
            self.call("GET", f"{API}/sobjects/Case/{case}", 200, rr(rng, 3000, 14000), gap=(0.01, 0.08))
            if i % 3 == 0:
                self.call("GET", f"{API}/sobjects/Case/{case}/CaseComments", 200, rr(rng, 500, 9000),
                          gap=(0.01, 0.08))
        self.ua = UA_REQUESTS
        self.call("GET", soql("SELECT Id, CaseNumber, Subject, Description FROM Case LIMIT 10000"), 200,
                  rr(rng, 3_000_000, 5_000_000))
        locator = "01g" + rand_str(rng, ALNUM, 15)
        for k in range(1, max(2, round(5 * s)) + 1):
            self.call("GET", f"{API}/query/{locator}-{2000 * k}", 200, rr(rng, 3_000_000, 5_000_000))

    def vault(self) -> None:
        """The support-tools Vault token pasted in a Case is replayed from IOC addresses."""
        em, rng, cast = self.em, self.rng, self.cast
        app = cast.vault_app("support-tools")
        tok = app.static_token
        assert tok is not None
        payloads = vault_payloads(cast)
        t = (epoch(2025, 8, 16, 18, 44) + rng.randrange(900)) * US
        steps = (("read", "auth/token/lookup-self", None, None),
                 ("read", "sys/mounts", None, "1 error occurred:\n\t* permission denied\n\n"),
                 ("list", "secret/metadata/integrations", {"keys": [vault_hmac("aws-prod"), vault_hmac("snowflake-etl")]},
                  None),
                 ("read", "secret/data/integrations/aws-prod", payloads["secret/data/integrations/aws-prod"], None),
                 ("read", "secret/data/integrations/snowflake-etl",
                  payloads["secret/data/integrations/snowflake-etl"], None))
        for op, path, data, error in steps:
            em.vault_pair(t, app, tok, IP_AWS_RECON, op, path, data=data, error=error, bad=True)
            t += rr(rng, 3, 30) * US
        t = (epoch(2025, 8, 18, 10, 5) + rng.randrange(900)) * US
        em.vault_pair(t, app, tok, IP_DO, "read", "secret/data/integrations/aws-prod",
                      data=payloads["secret/data/integrations/aws-prod"], bad=True)
        self.loot.vault_used = True
