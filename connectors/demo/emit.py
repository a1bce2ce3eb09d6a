"""Line writers for the three vendor formats of the demo: nginx `ir_json`, Okta LogEvent, Vault audit.

Each writer renders one event to bytes at once (orjson) and keeps `(time, seq, line)` so the files
can be sorted by time at the end. Times are integer microseconds since the epoch.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson

from connectors.demo.cast import ALNUM, Cast, Cred, Employee, VaultApp, ip_context, rand_str, rr

OKTA_DOMAIN = "https://acme-demo.okta.example"


_HM = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SS = [f"{x:02d}" for x in range(60)]


class Clock:
    """Fast UTC formatting: the date part is cached per day, hours/minutes/seconds come from tables."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def hms(self, sec: int) -> str:
        d, r = divmod(sec, 86400)
        day = self._days.get(d)
        if day is None:
            day = self._days[d] = time.strftime("%Y-%m-%dT", time.gmtime(d * 86400))
        return day + _HM[r // 60] + _SS[r % 60]

    def nginx(self, us: int) -> str:
        return self.hms(us // 1_000_000) + "+00:00"

    def okta(self, us: int) -> str:
        return f"{self.hms(us // 1_000_000)}.{us // 1000 % 1000:03d}Z"

    def vault(self, us: int, extra: int) -> str:
        return f"{self.hms(us // 1_000_000)}.{us % 1_000_000:06d}{extra:03d}Z"


class Sink:
    """One output file's lines in one buffer (orjson's result objects are dropped at once), sorted on output."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.index: list[tuple[int, int, int, int]] = []   # (time, seq, start, end)

    def add(self, us: int, seq: int, line: bytes) -> None:
        buf = self.buf
        start = len(buf)
        buf += line
        self.index.append((us, seq, start, start + len(line)))

    def __len__(self) -> int:
        return len(self.index)

    def write(self, path: Path) -> int:
        """Write the lines sorted by time (stable by emission order); returns the line count."""
        self.index.sort()
        view = memoryview(self.buf)
        with path.open("wb") as fh:
            if self.index:
                fh.write(b"\n".join([view[s:e] for _, _, s, e in self.index]))
                fh.write(b"\n")
        view.release()
        return len(self.index)


class Emitter:
    """Collects rendered lines per file and the ids of events the truth file will name."""

    def __init__(self, cast: Cast, rng: random.Random) -> None:
        self.cast = cast
        self.rng = rng
        self.clock = Clock()
        self.gateway = Sink()
        self.okta = Sink()
        self.vault = Sink()
        self.seq = 0
        self.malicious: list[dict[str, str]] = []
        self.traps: dict[str, list[str]] = {}
        self.first_bad = 0
        self.last_bad = 0

    # --- bookkeeping ---------------------------------------------------------------------------
    def _mark(self, source: str, eid: str, us: int, bad: bool, trap: str | None) -> None:
        if bad:
            self.malicious.append({"source": source, "id": eid})
            self.first_bad = us if not self.first_bad else min(self.first_bad, us)
            self.last_bad = max(self.last_bad, us)
        if trap:
            self.traps.setdefault(trap, []).append(eid)

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def uuid(self) -> str:
        h = self._hex(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def okta_req_id(self) -> str:
        return rand_str(self.rng, ALNUM, 24) + "AAA"

    # --- nginx ir_json ---------------------------------------------------------------------------
    def gw(self, us: int, ip: str, method: str, uri: str, status: int, ua: str, tok: Cred, nbytes: int,
           rt: float, *, active: bool = True, bad: bool = False, trap: str | None = None) -> str:
        rid = self._hex(128)
        upstream = str(status) if active else ""
        line = orjson.dumps({
            "time": self.clock.nginx(us), "remote_addr": ip, "method": method, "uri": uri, "status": status,
            "user_agent": ua, "token_fp": tok.fp, "token_tail": tok.tail, "token_active": "1" if active else "0",
            "upstream_status": upstream, "request_time": rt, "request_id": rid, "bytes": nbytes,
        })
        self.seq += 1
        self.gateway.add(us, self.seq, line)
        self._mark("gateway", rid, us, bad, trap)
        return rid

    # --- Okta System Log ---------------------------------------------------------------------------
    def _okta(self, us: int, event_type: str, message: str, actor: dict, ip: str, ua: str, *,
              client_id: str | None = None, target: list | None = None, debug: dict | None = None,
              auth_ctx: dict | None = None, outcome: str = "SUCCESS", reason: str | None = None,
              severity: str = "INFO", tx_detail: dict | None = None, bad: bool = False,
              trap: str | None = None) -> str:
        eid = self.uuid()
        us += rr(self.rng, 0, 900_000)   # Okta publishes milliseconds
        geo, sec = ip_context(ip)
        req_id = self.okta_req_id()
        dbg = {"requestId": req_id}
        if debug:
            dbg.update(debug)
        event = {
            "uuid": eid, "published": self.clock.okta(us), "eventType": event_type, "version": "0",
            "severity": severity, "legacyEventType": None, "displayMessage": message, "actor": actor,
            "client": {"userAgent": {"rawUserAgent": ua, "os": "Unknown", "browser": "UNKNOWN"},
                       "zone": "null", "device": "Computer" if ua.startswith("Mozilla") else "Unknown",
                       "id": client_id, "ipAddress": ip, "geographicalContext": geo},
            "device": None,
            "authenticationContext": auth_ctx or {"authenticationProvider": None, "credentialProvider": None,
                                                  "credentialType": None, "issuer": None, "interface": None,
                                                  "authenticationStep": 0, "externalSessionId": None},
            "outcome": {"result": outcome, "reason": reason},
            "target": target or [],
            "transaction": {"type": "WEB", "id": req_id, "detail": tx_detail or {}},
            "debugContext": {"debugData": dbg},
            "securityContext": sec,
            "request": {"ipChain": [{"ip": ip, "geographicalContext": geo, "version": "V4", "source": None}]},
        }
        self.seq += 1
        self.okta.add(us, self.seq, orjson.dumps(event))
        self._mark("okta", eid, us, bad, trap)
        return eid

    @staticmethod
    def user_actor(emp: Employee) -> dict:
        return {"id": emp.user_id, "type": "User", "alternateId": f"{emp.login}@acme.example",
                "displayName": emp.name, "detailEntry": None}

    def session_start(self, us: int, emp: Employee, ip: str, ua: str, *, trap: str | None = None) -> str:
        sid = "102" + rand_str(self.rng, ALNUM, 22)
        return self._okta(
            us, "user.session.start", "User login to Okta", self.user_actor(emp), ip, ua,
            auth_ctx={"authenticationProvider": "OKTA_AUTHENTICATION_PROVIDER", "credentialProvider": None,
                      "credentialType": "PASSWORD", "issuer": None, "interface": None, "authenticationStep": 0,
                      "externalSessionId": sid},
            debug={"requestUri": "/idp/idx/identify", "url": "/idp/idx/identify?", "behaviors": "{New IP=NEGATIVE}"},
            trap=trap)

    def sso(self, us: int, emp: Employee, ip: str, ua: str, app: str) -> str:
        return self._okta(
            us, "user.authentication.sso", f"User single sign on to app {app}", self.user_actor(emp), ip, ua,
            target=[{"id": "0oa" + self._hex(68)[:17], "type": "AppInstance", "alternateId": app,
                     "displayName": app, "detailEntry": {"signOnModeType": "SAML_2_0"}}],
            debug={"requestUri": "/app/salesforce/sso/saml", "url": "/app/salesforce/sso/saml?"})

    def token_grant(self, us: int, tok: Cred, *, client_id: str, emp: Employee, ip: str, ua: str,
                    grant_type: str, scopes: str, bad: bool = False, trap: str | None = None,
                    minted: str = "access_token") -> str:
        """`app.oauth2.as.token.grant.access_token` / `.refresh_token` minting `tok` for `client`."""
        kind = "Access Token" if minted == "access_token" else "Refresh Token"
        expires = tok.issued + (self.cast.refresh_period if minted == "access_token" else 90 * 86400)
        uri = f"/oauth2/{self.cast.auth_server}/v1/token"
        return self._okta(
            us, f"app.oauth2.as.token.grant.{minted}", f"OAuth2 {kind.lower()} is granted",
            self.user_actor(emp), ip, ua, client_id=client_id,
            target=[{"id": tok.okta_id, "type": minted, "alternateId": None, "displayName": kind,
                     "detailEntry": {"expires": self.clock.okta(expires * 1_000_000), "subject": emp.user_id,
                                     "hash": tok.at_hash}},
                    {"id": self.cast.auth_server, "type": "AuthorizationServer", "alternateId": "salesforce-gw",
                     "displayName": "salesforce-gw", "detailEntry": None}],
            debug={"grantType": grant_type, "grantedScopes": scopes, "requestedScopes": scopes,
                   "clientAuthType": "client_secret_basic", "requestUri": uri, "url": uri + "?"},
            auth_ctx={"authenticationProvider": None, "credentialProvider": None, "credentialType": None,
                      "issuer": {"id": self.cast.auth_server, "type": "AuthorizationServer"}, "interface": None,
                      "authenticationStep": 0, "externalSessionId": "unknown"},
            bad=bad, trap=trap)

    def token_revoke(self, us: int, tok: Cred, client_id: str, admin: Employee, ip: str, ua: str) -> str:
        minted = "refresh_token" if tok.kind == "refresh" else "access_token"
        uri = f"/oauth2/{self.cast.auth_server}/v1/revoke"
        return self._okta(
            us, "app.oauth2.as.token.revoke", "OAuth2 token revocation request", self.user_actor(admin), ip, ua,
            client_id=client_id,
            target=[{"id": tok.okta_id, "type": minted, "alternateId": None,
                     "displayName": "Refresh Token" if minted == "refresh_token" else "Access Token",
                     "detailEntry": {"hash": tok.at_hash}}],
            debug={"requestUri": uri, "url": uri + "?", "tokenTypeHint": minted})

    def api_token_create(self, us: int, admin: Employee, ip: str, ua: str, name: str) -> str:
        return self._okta(
            us, "system.api_token.create", "Create API token", self.user_actor(admin), ip, ua,
            target=[{"id": "00T" + self._hex(72)[:17], "type": "Token", "alternateId": "unknown",
                     "displayName": name, "detailEntry": None}],
            debug={"requestUri": "/api/internal/tokens", "url": "/api/internal/tokens?"})

    # --- Vault audit ---------------------------------------------------------------------------------
    def vault_pair(self, us: int, app: VaultApp, tok: Cred | None, ip: str, operation: str, path: str, *,
                   data: dict | None = None, new_token: Cred | None = None, error: str | None = None,
                   bad: bool = False) -> str:
        """A request line and its response line, sharing `request.id`."""
        rid = self.uuid()
        us += rr(self.rng, 0, 250_000)   # Vault writes nanoseconds
        kv = path.startswith("secret/")
        mount = ({"mount_point": "secret/", "mount_type": "kv", "mount_accessor": "kv_5e0d2a1b",
                  "mount_running_version": "v0.21.0+builtin", "mount_class": "secret"} if kv else
                 {"mount_point": path.split("/", 2)[0] + "/" + path.split("/", 2)[1] + "/",
                  "mount_type": path.split("/", 2)[1] if path.startswith("auth/") else "system",
                  "mount_accessor": "auth_token_0c4d8e2f" if path.startswith("auth/token") else
                  ("auth_approle_7b1f" if "approle" in path else ("auth_jwt_93aa" if "jwt" in path else "system_7d3f")),
                  "mount_class": "auth" if path.startswith("auth/") else ""})
        if tok is not None:
            auth = {"client_token": tok.hmac, "accessor": tok.accessor_hmac, "display_name": f"{app.auth}-{app.name}",
                    "policies": list(app.policies), "token_policies": list(app.policies), "metadata": {"role_name": app.name}
                    if app.auth != "token" else {}, "entity_id": app.entity_id, "token_type": "service",
                    "token_ttl": 2764800 if app.auth == "token" else 86400,
                    "token_issue_time": self.clock.hms(tok.issued) + "Z"}
            if app.auth == "token":
                auth["display_name"] = "token-" + app.name
        else:
            auth = {"token_type": "default"}
        request = {"id": rid, "client_id": app.entity_id, "operation": operation, **mount,
                   "namespace": {"id": "root"}, "path": path, "remote_address": ip,
                   "remote_port": 40000 + rr(self.rng, 0, 25000)}
        if tok is not None:
            request["client_token"] = tok.hmac
            request["client_token_accessor"] = tok.accessor_hmac
        head: dict = {"time": "", "type": "request", "auth": auth, "request": request}
        if error:
            head["error"] = error
        head["time"] = self.clock.vault(us, rr(self.rng, 0, 1000))
        self.seq += 1
        self.vault.add(us, self.seq, orjson.dumps(head))
        rus = us + 300 + rr(self.rng, 0, 4000)
        response: dict = {k: v for k, v in mount.items() if k != "mount_class"}
        if new_token is not None:
            response["auth"] = {"client_token": new_token.hmac, "accessor": new_token.accessor_hmac,
                                "display_name": f"{app.auth}-{app.name}", "policies": list(app.policies),
                                "token_policies": list(app.policies), "metadata": {"role_name": app.name},
                                "entity_id": app.entity_id, "token_type": "service", "token_ttl": 86400}
        if data is not None:
            response["data"] = data
        tail = {"time": self.clock.vault(rus, rr(self.rng, 0, 1000)), "type": "response",
                "auth": response["auth"] if new_token is not None else auth,
                "request": request, "response": response}
        if error:
            tail["error"] = error
        self.seq += 1
        self.vault.add(rus, self.seq, orjson.dumps(tail))
        self._mark("vault", rid, us, bad, None)
        return rid
