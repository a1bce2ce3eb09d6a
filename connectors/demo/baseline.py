"""Normal business: integrations syncing, employees signing in and scripting, apps reading Vault.

Volume follows the budget `generate` hands in; the three traps of the scenario (an employee's
aiohttp tooling, an employee on a Tor exit that is on the IOC list, and a reporting integration's
nightly `COUNT()` queries and bulk job) are part of this normal business and are recorded as traps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate
from urllib.parse import quote_plus

from connectors.demo.cast import (
    ALNUM,
    API,
    BASELINE_START,
    CORP_EGRESS,
    DATA_END,
    REVOKED_AT,
    TRAP_TOR_IP,
    Cast,
    Cred,
    Integration,
    Mint,
    epoch,
    pick,
    rand_str,
    rr,
    vault_hmac,
)
from connectors.demo.emit import Emitter

US = 1_000_000
TRAP_AIOHTTP = "employee tooling with the IOC user agent Python/3.11 aiohttp/3.12.15 (dana.ortiz, corporate IPs)"
TRAP_TOR = f"legitimate user on IOC Tor exit {TRAP_TOR_IP} (sam.keller, normal low-volume calls)"
TRAP_COUNT = "reporting-bi-connector nightly SELECT COUNT() probes and Opportunity bulk job (baseline)"


def soql(query: str) -> str:
    """A REST query URI the way Salesforce clients encode it (`+` for spaces)."""
    return f"{API}/query?q={quote_plus(query, safe='(),*')}"


@dataclass(slots=True)
class Budget:
    gateway: int
    okta: int
    vault: int


class Pools:
    """Record ids and ready-made query URIs, drawn once so per-event work is a choice and an f-string."""

    def __init__(self, rng: random.Random) -> None:
        def ids(prefix: str, n: int) -> list[str]:
            return [prefix + rand_str(rng, ALNUM, 15) for _ in range(n)]

        self.contacts = ids("003", 4000)
        self.accounts = ids("001", 1500)
        self.cases = ids("500", 3000)
        self.leads = ids("00Q", 2000)
        self.opps = ids("006", 1200)
        self.users = ids("005", 300)
        self.members = ids("00v", 800)
        firsts = ("ann", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ida", "jo", "kai", "liv", "max", "ned")
        self.email_queries = [
            soql(f"SELECT Id, Email, OwnerId FROM Contact WHERE Email = "
                 f"'{pick(rng, firsts)}.{pick(rng, firsts)}{rng.randrange(99)}@customer{rng.randrange(400)}.example'")
            for _ in range(1500)]
        self.case_queries = [soql(f"SELECT Id, Subject, Status FROM Case WHERE ContactId = '{c}'")
                             for c in rng.sample(self.contacts, 1000)]
        self.opp_queries = [soql(f"SELECT Id, Name, StageName, Amount FROM Opportunity WHERE AccountId = '{a}'")
                            for a in rng.sample(self.accounts, 600)]
        self.lead_queries = [soql(f"SELECT Id, Email, Status FROM Lead WHERE LastModifiedDate > 2025-0{m}-{d:02d}T00:00:00Z")
                             for m in (7, 8) for d in range(1, 29)]


def _weights(start: int, end: int, *, office: float, night: float, weekend: float,
             workdays_only: bool = False) -> tuple[list[int], list[float]]:
    """Hour slots between `start` and `end` with a US-business-hours shape (13-23 UTC)."""
    hours = list(range(start // 3600, end // 3600))
    w: list[float] = []
    for h in hours:
        wd = (h // 24 + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        hod = h % 24
        x = office if 14 <= hod <= 23 else night
        if wd >= 5:
            x = 0.0 if workdays_only else x * weekend
        w.append(x)
    return hours, list(accumulate(w))


def _times(rng: random.Random, n: int, slots: tuple[list[int], list[float]], lo: int, hi: int) -> list[int]:
    hours, cum = slots
    if n <= 0 or not hours:
        return []
    out = [h * 3600 * US + rr(rng, 0, 3600 * US) for h in rng.choices(hours, cum_weights=cum, k=n)]
    return sorted(t for t in out if lo * US <= t < hi * US)


def _workdays() -> list[int]:
    days = []
    for d in range(BASELINE_START // 86400, DATA_END // 86400 + 1):
        if (d + 3) % 7 < 5:
            days.append(d * 86400)
    return days


# --- endpoint menus: (method, uri, status, bytes) --------------------------------------------------
def _drift_call(rng: random.Random, p: Pools) -> tuple[str, str, int, int]:
    r = rng.random()
    if r < 0.40:
        return "GET", pick(rng, p.email_queries), 200, rr(rng, 180, 900)
    if r < 0.65:
        return "GET", f"{API}/sobjects/Contact/{pick(rng, p.contacts)}", 200, rr(rng, 1800, 3600)
    if r < 0.80:
        return "POST", f"{API}/sobjects/Lead", 201, rr(rng, 55, 70)
    if r < 0.95:
        return "PATCH", f"{API}/sobjects/Lead/{pick(rng, p.leads)}", 204, 0
    return "GET", f"{API}/sobjects/User/{pick(rng, p.users)}", 200, rr(rng, 2500, 4200)


def _marketing_call(rng: random.Random, p: Pools) -> tuple[str, str, int, int]:
    r = rng.random()
    if r < 0.35:
        return "PATCH", f"{API}/sobjects/Contact/{pick(rng, p.contacts)}", 204, 0
    if r < 0.60:
        return "GET", pick(rng, p.lead_queries), 200, rr(rng, 2000, 60000)
    if r < 0.80:
        return "POST", f"{API}/composite/sobjects", 200, rr(rng, 400, 4000)
    return "GET", f"{API}/sobjects/CampaignMember/{pick(rng, p.members)}", 200, rr(rng, 900, 1600)


def _support_call(rng: random.Random, p: Pools) -> tuple[str, str, int, int]:
    r = rng.random()
    if r < 0.40:
        return "GET", f"{API}/sobjects/Case/{pick(rng, p.cases)}", 200, rr(rng, 2500, 9000)
    if r < 0.65:
        return "GET", pick(rng, p.case_queries), 200, rr(rng, 200, 3000)
    if r < 0.80:
        return "POST", f"{API}/sobjects/CaseComment", 201, rr(rng, 55, 70)
    if r < 0.95:
        return "PATCH", f"{API}/sobjects/Case/{pick(rng, p.cases)}", 204, 0
    return "GET", f"{API}/sobjects/Contact/{pick(rng, p.contacts)}", 200, rr(rng, 1800, 3600)


def _employee_call(rng: random.Random, p: Pools, login: str) -> tuple[str, str, int, int]:
    r = rng.random()
    if login == "dana.ortiz":   # async ops script: account and opportunity hygiene
        if r < 0.5:
            return "GET", f"{API}/sobjects/Account/{pick(rng, p.accounts)}", 200, rr(rng, 2000, 5000)
        if r < 0.85:
            return "GET", pick(rng, p.opp_queries), 200, rr(rng, 300, 6000)
        return "PATCH", f"{API}/sobjects/Opportunity/{pick(rng, p.opps)}", 204, 0
    if login == "sam.keller":
        if r < 0.55:
            return "GET", f"{API}/sobjects/Opportunity/{pick(rng, p.opps)}", 200, rr(rng, 1500, 4000)
        if r < 0.85:
            return "GET", pick(rng, p.opp_queries), 200, rr(rng, 300, 6000)
        return "GET", f"{API}/limits", 200, rr(rng, 6000, 7000)
    if login == "priya.raman":
        if r < 0.4:
            return "GET", f"{API}/sobjects/Account/describe", 200, rr(rng, 90000, 140000)
        if r < 0.8:
            return "GET", pick(rng, p.opp_queries), 200, rr(rng, 300, 6000)
        return "GET", "/services/data/", 200, rr(rng, 2000, 2400)
    if r < 0.6:
        return "GET", soql("SELECT Id, Name, Industry FROM Account ORDER BY CreatedDate DESC LIMIT 200"), 200, \
            rr(rng, 20000, 60000)
    return "GET", f"{API}/sobjects/Contact/{pick(rng, p.contacts)}", 200, rr(rng, 1800, 3600)


_MENUS = {"drift-chat-integration": _drift_call, "marketing-sync": _marketing_call, "support-portal": _support_call}


def _rt(rng: random.Random, nbytes: int) -> float:
    return round(0.008 + rng.random() * 0.06 + nbytes / 40_000_000, 3)


class Baseline:
    """Writes the normal-business part of every file through `em`."""

    def __init__(self, cast: Cast, em: Emitter, rng: random.Random, mint: Mint) -> None:
        self.cast, self.em, self.rng, self.mint = cast, em, rng, mint
        self.pools = Pools(rng)
        self.clients = {name: "0oa" + rand_str(rng, ALNUM, 17)
                        for name in ("ops-scripts", "sf-cli", "data-workbench")}

    def run(self, budget: Budget) -> None:
        """Fill each file up to its line budget (totals, counting lines already written)."""
        em = self.em
        self.refreshes()
        self.okta_admin()
        self.reporting(max(0, int((budget.gateway - len(em.gateway)) * 0.05)))
        self.employees_api(max(0, int((budget.gateway - len(em.gateway)) * 0.22)))
        self.integration_calls(max(0, budget.gateway - len(em.gateway)))
        self.workforce(budget.okta - len(em.okta))
        self.vault(budget.vault - len(em.vault))

    # --- gateway: integrations ------------------------------------------------------------------
    def _refresh_line(self, integ: Integration, us: int, tok: Cred, ip: str) -> None:
        em, rng = self.em, self.rng
        assert integ.refresh is not None
        authoriser = self.cast.employee(integ.authorised_by)
        em.gw(us, ip, "POST", "/services/oauth2/token", 200, integ.user_agent, integ.refresh, rr(rng, 1400, 1600),
              _rt(rng, 0))
        em.token_grant(us + 2000, tok, client_id=integ.client_id, emp=authoriser, ip=ip, ua=integ.user_agent,
                       grant_type="refresh_token", scopes="api refresh_token offline_access")

    def refreshes(self) -> int:
        """One token-endpoint call per access token; Okta logs the grant. Returns gateway lines written."""
        em, rng, n = self.em, self.rng, 0
        for integ in self.cast.integrations:
            assert integ.refresh is not None
            authoriser = self.cast.employee(integ.authorised_by)
            ip = integ.ips[0]
            first = integ.refresh.issued * US
            em.token_grant(first, integ.refresh, client_id=integ.client_id, emp=authoriser, ip=ip,
                           ua=integ.user_agent, grant_type="authorization_code",
                           scopes="api refresh_token offline_access", minted="refresh_token")
            em.token_grant(first + 1500, integ.tokens[0], client_id=integ.client_id, emp=authoriser, ip=ip,
                           ua=integ.user_agent, grant_type="authorization_code",
                           scopes="api refresh_token offline_access")
            for tok in integ.tokens[1:]:
                if tok.issued >= DATA_END or (integ.name == "drift-chat-integration" and tok.issued >= REVOKED_AT):
                    break
                self._refresh_line(integ, tok.issued * US + rng.randrange(US), tok, pick(rng, integ.ips))
                n += 1
            if integ.name == "drift-chat-integration":
                # After the revocation the connector keeps trying to refresh and is refused.
                t = REVOKED_AT + 600
                while t < DATA_END:
                    em.gw(t * US, pick(rng, integ.ips), "POST", "/services/oauth2/token", 400, integ.user_agent,
                          integ.refresh, 74, _rt(rng, 0), active=False)
                    n += 1
                    t += self.cast.refresh_period
        return n

    def integration_calls(self, n: int) -> None:
        em, rng, p = self.em, self.rng, self.pools
        chosen = [i for i in self.cast.integrations if i.name in _MENUS]
        total = sum(i.share for i in chosen)
        slots = _weights(BASELINE_START, DATA_END, office=1.0, night=0.45, weekend=0.5)
        period = self.cast.refresh_period
        for integ in chosen:
            assert integ.refresh is not None
            menu = _MENUS[integ.name]
            first = integ.refresh.issued
            revoked = integ.name == "drift-chat-integration"
            for us in _times(rng, round(n * integ.share / total), slots, first + 5, DATA_END):
                sec = us // US
                tok = integ.tokens[(sec - first) // period]
                method, uri, status, nbytes = menu(rng, p)
                if revoked and sec >= REVOKED_AT:
                    em.gw(us, pick(rng, integ.ips), method, uri, 401, integ.user_agent, tok, 0, _rt(rng, 0),
                          active=False)
                    continue
                if rng.random() < 0.006:
                    status, nbytes = 404, 120
                em.gw(us, pick(rng, integ.ips), method, uri, status, integ.user_agent, tok, nbytes, _rt(rng, nbytes))

    def reporting(self, n: int) -> int:
        """Nightly 02:00 UTC: COUNT() of three objects, then an Opportunity bulk query job (kept, not deleted)."""
        em, rng = self.em, self.rng
        integ = self.cast.integration("reporting-bi-connector")
        assert integ.refresh is not None
        nights = list(range(integ.refresh.issued // 86400 + 1, DATA_END // 86400 + 1))
        per_night = 10
        keep = max(1, min(len(nights), n // per_night))
        step = len(nights) / keep
        written = 0
        for k in range(keep):
            day = nights[int(k * step)] * 86400
            t = (day + 2 * 3600 + rng.randrange(300)) * US
            tok = integ.tokens[min(len(integ.tokens) - 1, (t // US - integ.refresh.issued) // self.cast.refresh_period)]
            ip = integ.ips[0]
            ua = integ.user_agent

            def call(method: str, uri: str, status: int, nbytes: int, trap: str | None = None, _ip: str = ip,
                     _tok: Cred = tok, _ua: str = ua) -> None:
                nonlocal t, written
                em.gw(t, _ip, method, uri, status, _ua, _tok, nbytes, _rt(rng, nbytes), trap=trap)
                t += rr(rng, 2, 40) * US
                written += 1

            for obj in ("Account", "Opportunity", "Contact"):
                call("GET", soql(f"SELECT COUNT() FROM {obj}"), 200, rr(rng, 28, 34), TRAP_COUNT)
            job = "750" + rand_str(rng, ALNUM, 15)
            call("POST", f"{API}/jobs/query", 201, rr(rng, 380, 420), TRAP_COUNT)
            for _ in range(3):
                call("GET", f"{API}/jobs/query/{job}", 200, rr(rng, 560, 620), TRAP_COUNT)
            call("GET", f"{API}/jobs/query/{job}/results?maxRecords=50000", 200, rr(rng, 2_000_000, 4_000_000),
                 TRAP_COUNT)
            call("GET", f"{API}/jobs/query/{job}/results?locator={rng.randrange(10**6):06d}&maxRecords=50000", 200,
                 rr(rng, 300_000, 2_000_000), TRAP_COUNT)
            call("GET", f"{API}/limits", 200, rr(rng, 6000, 7000))
        return written

    # --- gateway + Okta: employees using the API ---------------------------------------------------
    def employees_api(self, n: int) -> int:
        em, rng, p = self.em, self.rng, self.pools
        users = [e for e in self.cast.employees if e.api_client]
        total = sum(e.api_share for e in users)
        days = _workdays()
        written = 0
        tor_days = {epoch(2025, 7, 24), epoch(2025, 8, 1), epoch(2025, 8, 14)}
        for emp in users:
            calls = round(n * emp.api_share / total)
            sessions_per_day = 2 if emp.login == "dana.ortiz" else 1
            per_session = max(1, calls // (len(days) * sessions_per_day))
            for day in days:
                on_tor = emp.login == "sam.keller" and day in tor_days
                trap = TRAP_TOR if on_tor else (TRAP_AIOHTTP if emp.login == "dana.ortiz" else None)
                ip = TRAP_TOR_IP if on_tor else (pick(rng, CORP_EGRESS) if rng.random() < 0.7 or
                                                   emp.login == "dana.ortiz" else emp.home_ip)
                login_us = (day + 14 * 3600 + rng.randrange(2 * 3600)) * US
                em.session_start(login_us, emp, ip, emp.browser, trap=TRAP_TOR if on_tor else None)
                tok = self.mint.access(emp.login, login_us // US)
                self.cast.secrets.append(tok.raw)
                em.token_grant(login_us + 40 * US, tok, client_id=self.clients[emp.api_client], emp=emp, ip=ip,
                               ua=emp.api_ua if emp.login != "lee.chen" else emp.browser,
                               grant_type="authorization_code", scopes="api refresh_token", trap=trap)
                for s in range(sessions_per_day):
                    t = login_us + (60 + s * 4 * 3600 + rng.randrange(3600)) * US
                    for _ in range(per_session):
                        method, uri, status, nbytes = _employee_call(rng, p, emp.login)
                        em.gw(t, ip, method, uri, status, emp.api_ua, tok, nbytes, _rt(rng, nbytes), trap=trap)
                        written += 1
                        # aiohttp fires concurrently; people with a CLI pause between commands.
                        t += rr(rng, 20_000, 400_000) if emp.login == "dana.ortiz" else rr(rng, 5, 240) * US
        return written

    # --- Okta: administration and workforce sign-ins ----------------------------------------------
    def okta_admin(self) -> int:
        em, rng = self.em, self.rng
        admin = self.cast.employee("morgan.lee")
        em.api_token_create(epoch(2025, 7, 29, 17, 4, 12) * US + rng.randrange(US), admin, CORP_EGRESS[0],
                            admin.browser, "terraform-okta-automation")
        drift = self.cast.integration("drift-chat-integration")
        assert drift.refresh is not None
        t = REVOKED_AT * US
        em.token_revoke(t, drift.refresh, drift.client_id, admin, CORP_EGRESS[0], admin.browser)
        live = [k for k in drift.tokens if k.issued < REVOKED_AT][-1]
        em.token_revoke(t + 2 * US, live, drift.client_id, admin, CORP_EGRESS[0], admin.browser)
        return 3

    def workforce(self, n: int) -> None:
        em, rng = self.em, self.rng
        people = [e for e in self.cast.employees if not e.login.startswith("svc.")]
        days = _workdays()
        if n <= 0:
            return
        per_day = max(1, n // (len(days) * len(people)))
        apps = ("Salesforce", "Slack", "Google Workspace", "Zendesk", "GitHub")
        for day in days:
            for emp in people:
                ip = pick(rng, CORP_EGRESS) if rng.random() < 0.65 else emp.home_ip
                t = (day + 13 * 3600 + rng.randrange(3 * 3600)) * US
                em.session_start(t, emp, ip, emp.browser)
                for _ in range(per_day - 1):
                    t += rr(rng, 60, 2400) * US
                    em.sso(t, emp, ip, emp.browser, pick(rng, apps))

    # --- Vault: apps reading their secrets -------------------------------------------------------------
    def vault(self, n_lines: int) -> None:
        em, rng, cast = self.em, self.rng, self.cast
        pairs = max(0, n_lines // 2)
        days = list(range(BASELINE_START // 86400, DATA_END // 86400 + 1))
        payloads = vault_payloads(cast)
        slots = _weights(BASELINE_START, DATA_END, office=1.0, night=0.6, weekend=0.7)
        for app in cast.vault_apps:
            reads = round(pairs * app.share)
            tokens: dict[int, Cred] = {}
            if app.static_token is not None:
                tokens = dict.fromkeys(days, app.static_token)
            else:
                for d in days:
                    if app.auth == "jwt" and (d + 3) % 7 >= 5:
                        continue
                    tok = self.mint.vault_token(app.name, d * 86400 + 3600 + rng.randrange(1800))
                    cast.secrets.append(tok.raw)
                    login = f"auth/{app.auth}/login"
                    em.vault_pair(tok.issued * US, app, None, pick(rng, app.ips), "update", login,
                                  data=None, new_token=tok)
                    tokens[d] = tok
                    reads -= 1
            for us in _times(rng, max(0, reads), slots, BASELINE_START + 2 * 3600, DATA_END):
                day_token = tokens.get(us // US // 86400)
                if day_token is None or day_token.issued * US > us:
                    continue
                path = pick(rng, app.paths)
                em.vault_pair(us, app, day_token, pick(rng, app.ips), "read", path, data=payloads[path])


def vault_payloads(cast: Cast) -> dict[str, dict]:
    """KV v2 read responses as the audit device writes them: every string value HMAC'd."""

    def kv(values: dict[str, str], version: int) -> dict:
        return {"data": {k: vault_hmac(v) for k, v in values.items()},
                "metadata": {"created_time": vault_hmac(f"2025-06-{version + 10:02d}T09:00:00Z"),
                             "custom_metadata": None, "deletion_time": vault_hmac(""), "destroyed": False,
                             "version": version}}

    return {
        "secret/data/integrations/aws-prod": kv({"access_key_id": cast.aws_key.raw,
                                                 "secret_access_key": cast.aws_secret, "region": "us-east-1"}, 4),
        "secret/data/integrations/snowflake-etl": kv({"account": "acme-demo.snowflakecomputing.example",
                                                      "user": "ETL_SVC", "password": cast.snowflake_password}, 7),
        "secret/data/ci/deploy-key": kv({"private_key": "FAKE-deploy-key-material"}, 2),
        "secret/data/ci/npm-publish": kv({"token": "FAKE-npm-publish-token"}, 3),
        "secret/data/support/zendesk-api": kv({"email": "support@acme.example", "api_token": "FAKE-zendesk"}, 5),
        "secret/data/support/jira-bot": kv({"user": "jira-bot", "api_token": "FAKE-jira"}, 1),
    }


__all__ = ["Baseline", "Budget", "TRAP_AIOHTTP", "TRAP_COUNT", "TRAP_TOR", "soql", "vault_payloads"]
