"""The secrets canary (issue 12, "Secrets"): one obviously fake token of every credential shape is fed through
every path by which a secret reaches stanch, and none of them — raw, URL-encoded, or base64 (standard and urlsafe,
padded or not, at any alignment) — is then found in the case file, its WAL, any export, any command's output or
error message, or a console screenshot.

Paths, each driven through the `stanch` command line (in process, output captured) against one case:

- ingest: per canary, log lines in four formats — an Authorization header (`Bearer`/`SSWS`/`Basic`), a query
  string (`access_token=`, `code=` and an ordinary parameter), a JSON field, a CSV cell — plus malformed lines
  holding canaries; `stanch ingest-data` of a CSV with canaries in cells;
- pull: the Okta System Log from a local toy server (its pages carry canaries; the connector's own API token is a
  canary too), then a pull the server refuses with an error body that echoes the token;
- blast seed: `stanch blast CASE -` (and `fingerprint -`, `export --seed -`) with each raw canary on stdin;
- playbook secrets: `stanch play apply --secrets-from FILE` (and `-`) revoking the case's OAuth tokens at the toy
  server (RFC 7009), whose introspection echoes the token back;
- notes: `stanch note` with a canary in the text;
- errors: a canary where an error would echo what was typed: a bad `--format`, a malformed line, a bad seed,
  a bad `--credential`, `--policy`, `--window-start`, `--on`.

Outputs scanned: the case file and its WAL (a reader holds the WAL open, so it is not checkpointed away), a SQL
dump of the case, every `stanch export` format (the bundle's members unzipped, the SETs decoded), stdout and stderr
of every command, the console's SVG screenshots of every screen on the case (and the raw-record modal), and every
other file stanch wrote under the test's folder.

See tests/hardening/__init__.py for the canaries and the leak finder.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import keyring
import orjson
import pytest

from casefile.secrets import fingerprint
from tests.connectors.test_config import InMemoryTestKeyring
from tests.hardening import Canary, Leaks, canaries, forms
from tests.tui import settle
from tui.cli import main

pytestmark = pytest.mark.timeout(240)

SHAPE_FREE_TEXT = "shape-free"  # a canary without a vendor prefix cannot be found in free text by anyone


# ------------------------------------------------------------------------------------------------ the toy server


@dataclass
class ToyState:
    """What the toy Okta + OAuth server serves and what it saw."""

    okta_token: str
    pages: list[list[dict[str, Any]]]
    refuse_logs: bool = False
    echo_revoke_error: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)
    introspected: list[str] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)


def _handler(state: ToyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep the test's output clean
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _base(self) -> str:
            return f"http://{self.headers['Host']}"

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            auth = self.headers.get("Authorization", "")
            state.auth_seen.append(auth)
            if url.path == "/.well-known/openid-configuration":
                base = self._base()
                self._send(200, {"issuer": base, "introspection_endpoint": f"{base}/introspect",
                                 "revocation_endpoint": f"{base}/revoke"})
                return
            if url.path != "/api/v1/logs":
                self._send(404, {"errorCode": "E0000007", "errorSummary": f"Not found: {self.path}"})
                return
            if auth != f"SSWS {state.okta_token}":
                self._send(401, {"errorCode": "E0000011", "errorSummary": f"Invalid token provided: {auth}"})
                return
            if state.refuse_logs:  # a server that echoes the credential it was given, in its error body
                self._send(403, {"errorCode": "E0000006", "errorSummary": f"You do not have permission ({auth})",
                                 "errorCauses": [{"errorSummary": f"token {state.okta_token} lacks okta.logs.read"}]})
                return
            page = int((q.get("after") or ["0"])[0] or 0)
            body = state.pages[page] if page < len(state.pages) else []
            nxt = f'<{self._base()}/api/v1/logs?after={page + 1}&limit=1000>; rel="next"'
            self._send(200, body, {"Link": nxt})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            token = (form.get("token") or [""])[0]
            path = urlsplit(self.path).path
            if path == "/introspect":
                state.introspected.append(token)
                # A chatty server: the token comes back in its own field and inside a sentence.
                self._send(200, {"active": False, "token": token, "note": f"token {token} is not active",
                                 "client_id": "canary-client", "scope": "read"})
            elif path == "/revoke":
                state.revoked.append(token)
                if token in state.echo_revoke_error:
                    self._send(400, {"error": "invalid_request", "error_description": f"cannot revoke {token}"})
                else:
                    self._send(200, {})
            else:
                self._send(404, {"error": "not_found"})

    return Handler


@dataclass
class Toy:
    url: str
    state: ToyState


def serve(state: ToyState) -> Iterator[Toy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield Toy(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------ inputs


def _enc(v: str) -> str:
    return quote(v, safe="")


def scheme(c: Canary) -> str:
    return "SSWS" if c.name == "okta-api-token" else "Bearer"


def in_context(c: Canary) -> str:
    """How a responder's note would hold the canary: as is when it has a vendor prefix; otherwise in the header or
    parameter it came from (nothing can tell an opaque string in prose from a word)."""
    if c.recognisable:
        return c.value
    if c.name == "aws-secret-access-key":
        return f"secret_access_key={c.value}"
    return f"Authorization: {scheme(c)} {c.value}"


def nginx_json_lines(items: list[Canary]) -> list[bytes]:
    """Per canary: an Authorization header, a token-named and an ordinary query parameter, a Basic header, and (for
    a shaped canary) free-text fields; plus malformed lines that hold canaries."""
    out: list[bytes] = []
    sec = 0

    def line(**rec: Any) -> None:
        nonlocal sec
        sec += 1
        base = {"time": f"2025-08-17T11:{sec // 60:02d}:{sec % 60:02d}+00:00", "remote_addr": "203.0.113.9",
                "method": "GET", "status": 200, "http_user_agent": "curl/8.5.0", "request_id": f"canary-{sec}"}
        out.append(orjson.dumps({**base, **rec}))

    for c in items:
        one_line = "\n" not in c.value
        if one_line:
            line(uri="/api/items?page=2", http_authorization=f"{scheme(c)} {c.value}")
        line(uri=f"/api/items?access_token={_enc(c.value)}&page=3")
        line(uri="/api/login", http_authorization="Basic " + base64.b64encode(f"svc:{c.value}".encode()).decode())
        line(uri="/api/conf", client_secret=c.value, secret_access_key=c.value)
        if c.recognisable:
            line(uri=f"/search?q={_enc(c.value)}", http_referer=f"https://app.example/?next={_enc(c.value)}",
                 http_user_agent=f"agent {c.value}" if one_line else "agent", x_comment=f"pasted: {c.value}")
        # the names config files and the environment give keys (the canary found aws_secret_access_key stored raw)
        line(uri="/api/env", aws_secret_access_key=c.value, AWS_SECRET_KEY=c.value, stripeApiKey=c.value,
             gcp_private_key=c.value)
    # malformed lines holding canaries (after the good ones, so the format is still detected)
    for c in items[:6]:
        out.append(b'{"time": "2025-08-17T12:00:00+00:00", "remote_addr": "203.0.113.9", "uri": "/x?q=' +
                   c.value.encode() + b'", "http_authorization": "Bearer ' + c.value.encode() + b'"')
        out.append(b"not json at all " + c.value.encode())
    return out


def combined_lines(items: list[Canary]) -> list[bytes]:
    out = []
    for i, c in enumerate(items):
        if "\n" in c.value:
            continue
        t = f"17/Aug/2025:11:20:{i:02d} +0000"
        q = f"code={_enc(c.value)}&state=s1"
        if c.recognisable:
            q += f"&q={_enc(c.value)}"
            ua, ref = f"agent {c.value}", f"https://app.example/?next={_enc(c.value)}"
        else:
            ua, ref = "agent/1", "-"
        out.append(f'198.51.100.{i + 1} - - [{t}] "GET /cb?{q} HTTP/1.1" 200 5 "{ref}" "{ua}"'.encode())
        out.append(f'198.51.100.{i + 1} - - [{t}] "GET /api?access_token={_enc(c.value)} HTTP/1.1" 401 5 "-" '
                   f'"agent/1"'.encode())
    out.append(b"malformed " + items[0].value.encode() + b" [not a log line]")
    return out


OKTA_CSV_HEADER = ["Date", "Actor Display Name", "Actor Alternate ID", "Actor ID", "Actor Type", "Event Type",
                   "Display Message", "Outcome", "Outcome Reason", "IP Address", "Client ID", "User Agent", "City",
                   "Country", "Target", "Event UUID"]


def okta_csv(items: list[Canary]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(OKTA_CSV_HEADER)
    for i, c in enumerate(items):
        w.writerow([f"2025-08-17T11:30:{i:02d}.000Z", "Alice Example", "alice@example.com", "00u1a2b3c4d5e6f7g8h9",
                    "User", "user.session.start", f"pasted {c.value}", "SUCCESS", "", "203.0.113.7", "",
                    "curl/8.5.0", "", "", c.value, f"6b0c5e2a-7b1d-11f0-8de9-{i:012d}"])
    return buf.getvalue()


def okta_event(i: int, c: Canary) -> dict[str, Any]:
    debug: dict[str, Any] = {"requestUri": f"/oauth2/v1/token?refresh_token={_enc(c.value)}",
                             "client_secret": c.value}
    ev: dict[str, Any] = {
        "uuid": f"canary-okta-{i:04d}", "published": f"2025-08-17T11:40:{i % 60:02d}.000Z",
        "eventType": "app.oauth2.token.grant", "version": "0", "severity": "INFO",
        "displayMessage": "OAuth2 token granted",
        "actor": {"id": "00u1", "type": "User", "alternateId": "alice@example.com", "displayName": "Alice"},
        "client": {"ipAddress": "203.0.113.7", "userAgent": {"rawUserAgent": "curl/8.5.0"}},
        "outcome": {"result": "SUCCESS"}, "debugContext": {"debugData": debug},
    }
    if c.recognisable:
        ev["displayMessage"] = f"OAuth2 token granted {c.value}"
        ev["client"]["userAgent"]["rawUserAgent"] = f"curl/8.5.0 {c.value}"
        debug["url"] = f"/api/v1/x?q={_enc(c.value)}"
    return ev


def data_csv(items: list[Canary]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Id", "Subject", "Description", "api_token"])
    for i, c in enumerate(items):
        w.writerow([f"500FAKE{i:08d}", "customer pasted a credential", f"here it is: {c.value}", c.value])
    return buf.getvalue()


PLAYBOOK = """\
id: canary-oauth
title: Revoke the canary OAuth tokens
incident: {name: "secrets canary (tests/hardening)", source: "issue 12"}
inputs: {}
steps:
  - {id: tokens, kind: select, from: credentials, where: {kind: [access, refresh, jwt]}}
  - {id: revoke, kind: act, items: tokens}
  - {id: prove, kind: probe, items: revoke}
"""

EXPORTS = ("timesketch-jsonl", "timesketch-csv", "markdown", "html", "opengraph", "dot", "mermaid", "revocation-set",
           "sets", "bundle")


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Run:
    root: Path
    case: Path
    items: list[Canary]
    toy: Toy
    outputs: list[tuple[str, int, str, str]] = field(default_factory=list)  # (label, code, stdout, stderr)
    errors: list[str] = field(default_factory=list)  # labels of the commands fed a canary to make them fail
    exports: dict[str, Path] = field(default_factory=dict)
    shots: dict[str, str] = field(default_factory=dict)
    wal: bytes = b""
    inputs: list[Path] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)

    def cli(self, label: str, *argv: str, stdin: str = "", expect: int | None = 0) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse usage errors
            code = int(e.code or 0)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
        self.outputs.append((label, code, out.getvalue(), err.getvalue()))
        if expect is not None:
            assert code == expect, f"{label}: exit {code}\n{err.getvalue()[-2000:]}\n{out.getvalue()[-2000:]}"
        return code, out.getvalue(), err.getvalue()

    def error(self, label: str, *argv: str, stdin: str = "") -> str:
        code, out, err = self.cli(label, *argv, stdin=stdin, expect=None)
        assert code != 0, f"{label}: expected a failure, got exit 0:\n{out[-1000:]}"
        assert err.strip(), f"{label}: failed without saying why"
        self.errors.append(label)
        return err

    def write(self, name: str, data: str | bytes) -> Path:
        p = self.root / "inputs" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        self.inputs.append(p)
        return p


async def _screens(case: Path, shots: dict[str, str], seed: str) -> None:
    from tui.app import SCREENS, StanchApp
    from tui.screens.timeline import RawRecord

    app = StanchApp(str(case), start="overview")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for name in SCREENS:
            app.action_goto(name)
            await settle(pilot)
            shots[name] = app.export_screenshot()
        app.open("blast", seed)
        await settle(pilot)
        shots["blast-seeded"] = app.export_screenshot()
        app.open("timeline", seed)
        await settle(pilot)
        shots["timeline-seeded"] = app.export_screenshot()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RawRecord)
        shots["timeline-raw-record"] = app.export_screenshot()
        await pilot.press("escape")
        app.action_goto("credentials")
        await settle(pilot)
        await pilot.press("slash", *"curl")
        await settle(pilot)
        shots["credentials-filtered"] = app.export_screenshot()


@contextmanager
def canary_run(root: Path) -> Iterator[Run]:
    """Feed every canary through every path into a case under `root` (see the module doc)."""
    items = canaries()
    okta_token = next(c.value for c in items if c.name == "okta-api-token")
    pages = [[okta_event(i, c) for i, c in enumerate(items[:14])],
             [okta_event(i + 14, c) for i, c in enumerate(items[14:])]]
    state = ToyState(okta_token=okta_token, pages=pages)
    before = keyring.get_keyring()
    keyring.set_keyring(InMemoryTestKeyring())
    mp = pytest.MonkeyPatch()
    servers = serve(state)
    toy = next(servers)
    try:
        cfg = root / "cfg"
        cfg.mkdir()
        mp.setenv("STANCH_CONFIG_DIR", str(cfg))
        mp.setenv("CANARY_OKTA_SECRET", okta_token)
        mp.setenv("CANARY_IDP_SECRET", "canary-idp-client-secret")
        mp.delenv("STANCH_READ_ONLY", raising=False)
        mp.chdir(root)
        case = root / "case" / "c.stanch"
        case.parent.mkdir()
        r = Run(root, case, items, toy)
        _drive(r)
        yield r
    finally:
        mp.undo()
        keyring.set_keyring(before)
        next(servers, None)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with canary_run(tmp_path_factory.mktemp("canary")) as r:
        yield r


def _drive(r: Run) -> None:
    r.cli("new", "new", str(r.case))
    # A reader holds the WAL open for the whole run: what the commands wrote stays in c.stanch-wal to be scanned.
    reader = sqlite3.connect(f"file:{r.case}?mode=ro", uri=True)
    reader.execute("SELECT count(*) FROM meta").fetchone()
    try:
        _feed(r)
        r.wal = Path(f"{r.case}-wal").read_bytes() if Path(f"{r.case}-wal").exists() else b""
    finally:
        reader.close()


def _feed(r: Run) -> None:
    c, items = str(r.case), r.items
    shaped = [x for x in items if x.recognisable]
    # ---- ingest: four formats, malformed lines among them
    nj = r.write("gateway.jsonl", b"\n".join(nginx_json_lines(items)) + b"\n")
    cb = r.write("access.log", b"\n".join(combined_lines(items)) + b"\n")
    oc = r.write("okta-export.csv", okta_csv(shaped))
    r.cli("ingest nginx-json", "ingest", c, str(nj), "--json")
    r.cli("ingest nginx-combined", "ingest", c, str(cb))
    r.cli("ingest okta-csv", "ingest", c, str(oc), "--format", "okta-csv")
    dc = r.write("cases.csv", data_csv(shaped))
    r.cli("ingest-data", "ingest-data", c, str(dc), "--object-type", "Case")
    # ---- pull: the toy Okta; then a refusal whose body echoes the token
    r.cli("connector add okta", "connector", "add", "okta", "--kind", "okta", "--url", r.toy.url,
          "--secret-env", "CANARY_OKTA_SECRET")
    r.cli("pull okta", "pull", c, "okta")
    r.toy.state.refuse_logs = True
    r.error("pull okta refused", "pull", c, "okta")
    r.toy.state.refuse_logs = False
    # ---- notes
    for x in items:
        r.cli(f"note {x.name}", "note", c, f"found {in_context(x)} in the #ops channel; rotated")
    # ---- blast seed on stdin (and fingerprint, and a graph export seeded the same way)
    for x in items:
        r.cli(f"blast - {x.name}", "blast", c, "-", stdin=x.value + "\n")
    for x in items[:8]:
        r.cli(f"blast - --json {x.name}", "blast", c, "-", "--json", stdin=x.value)
        r.cli(f"fingerprint - {x.name}", "fingerprint", "--json", stdin=x.value)
    out = r.root / "out"
    out.mkdir()
    jwt = next(x for x in items if x.name == "jwt")
    r.cli("export dot --seed -", "export", c, "--format", "dot", "--seed", "-", "-o", str(out / "seeded.dot"),
          stdin=jwt.value)
    r.exports["dot --seed -"] = out / "seeded.dot"
    # ---- errors that would echo what was typed
    for x in shaped[:: max(1, len(shaped) // 8)] + [y for y in items if not y.recognisable]:
        v = x.value if x.recognisable else f"Bearer {x.value}"
        if "\n" in v:
            continue
        r.error(f"error blast seed {x.name}", "blast", c, v)
        r.error(f"error ingest --format {x.name}", "ingest", c, str(nj), "--format", v)
        r.error(f"error export --format {x.name}", "export", c, "--format", v, "-o", str(out / "x"))
        r.error(f"error play plan seed {x.name}", "play", "plan", c, "leaked-github-pat", "--input", f"seed={v}")
        r.error(f"error events --credential {x.name}", "events", c, "--credential", v)
        r.error(f"error note --on {x.name}", "note", c, "x", "--on", f"event:{v}")
        r.error(f"error case set --policy {x.name}", "case", "set", c, "--policy", v)
        r.error(f"error --window-start {x.name}", "case", "set", c, "--window-start", v)
        r.error(f"error export --seed {x.name}", "export", c, "--format", "dot", "--seed", v, "-o", str(out / "y"))
    # ---- playbook secrets: RFC 7009 at the toy IdP, raw values from a file and from stdin
    r.cli("connector add idp", "connector", "add", "idp", "--kind", "oauth", "--url", r.toy.url, "--client-id",
          "ir-admin", "--secret-env", "CANARY_IDP_SECRET")
    pbdir = r.root / "inputs" / "playbooks"
    pbdir.mkdir(parents=True)
    (pbdir / "canary.yaml").write_text(PLAYBOOK)
    r.inputs.append(pbdir / "canary.yaml")
    _, plan_out, _ = r.cli("play plan", "play", "plan", c, "canary-oauth", "--playbooks", str(pbdir), "--json")
    plan = json.loads(plan_out)
    r.plan = plan
    one = next(x for x in items if x.name == "opaque-bearer")
    r.toy.state.echo_revoke_error.add(one.value)
    r.cli("play approve", "play", "approve", c, str(plan["plan"]), "--as", "alice")
    raw = [x.value for x in items if "\n" not in x.value]
    raw += ["Basic " + base64.b64encode(f"svc:{x.value}".encode()).decode() for x in items]  # as the log had them
    lines = "\n".join(raw) + "\n"
    secrets = r.write("secrets.txt", lines)
    r.cli("play apply --secrets-from FILE", "play", "apply", c, str(plan["plan"]), "--secrets-from", str(secrets),
          expect=None)
    r.cli("play verify --secrets-from -", "play", "verify", c, str(plan["plan"]), "--secrets-from", "-", stdin=lines,
          expect=None)
    r.cli("play status", "play", "status", c, str(plan["plan"]))
    # ---- everything a responder reads
    r.cli("findings", "findings", c, expect=None)
    r.cli("credentials", "credentials", c)
    r.cli("credentials --json", "credentials", c, "--json")
    r.cli("events --json", "events", c, "--json", "--limit", "1000")
    r.cli("info --json", "info", c, "--json")
    r.cli("verify", "verify", c)
    # ---- every export format
    for fmt in EXPORTS:
        dest = out / f"case.{fmt}"
        extra = ("--audience", "https://rp.example.com") if fmt == "sets" else ()
        r.cli(f"export {fmt}", "export", c, "--format", fmt, "-o", str(dest), *extra)
        r.exports[fmt] = dest
    # ---- the console, on every screen
    seed = fingerprint(jwt.value).keys[0]
    asyncio.run(_screens(r.case, r.shots, seed))
    shots = r.root / "shots"
    shots.mkdir()
    for name, svg in r.shots.items():
        (shots / f"{name}.svg").write_text(svg)


# ------------------------------------------------------------------------------------------------ the tests


def _leaks(r: Run) -> Leaks:
    return Leaks(r.items)


def test_the_leak_finder_finds_every_form() -> None:
    """Self-test: each canary planted raw, URL-encoded or base64 (inside a longer base64 run, at each alignment)
    is found; the canaries' own keys and previews are not mistaken for them."""
    items = canaries()
    for x in items:
        needle = x.needles[0]
        for name, planted in forms(needle).items():
            if name.startswith("base64-inside"):
                continue
            leaks = Leaks([x])
            leaks.scan("planted", b"prefix " + planted + b" suffix")
            assert leaks.found, (x.name, name)
        for k in range(3):
            blob = base64.b64encode(b"x" * k + b'{"t":"' + needle.encode() + b'"}')
            for enc in (blob, blob.replace(b"+", b"-").replace(b"/", b"_").rstrip(b"=")):
                leaks = Leaks([x])
                leaks.scan("planted", enc)
                assert leaks.found, (x.name, "base64 at alignment", k)
        clean = Leaks([x])
        fp = fingerprint(x.value)
        clean.scan("fingerprint", " ".join([*fp.keys, fp.preview]))
        assert not clean.found, (x.name, clean.found)


def test_every_path_was_exercised(run: Run) -> None:
    """The canaries reached stanch: each is a credential of the case (by its sha256 key), the pull stored pages,
    the plan revoked tokens with the raw values at the server, and every export and screen exists."""
    con = sqlite3.connect(f"file:{run.case}?mode=ro", uri=True)
    try:
        keys = {k for (k,) in con.execute("SELECT key FROM credential_keys")}
        pulled = con.execute("SELECT count(*) FROM events WHERE vendor = 'okta' AND id LIKE '%canary-okta-%'"
                             ).fetchone()[0]
        notes = con.execute("SELECT count(*) FROM notes").fetchone()[0]
    finally:
        con.close()
    missing = [x.name for x in run.items if fingerprint(x.value).keys[0] not in keys and "\n" not in x.value]
    assert not missing, f"canaries that never became a credential: {missing}"
    assert pulled == len(run.items), pulled
    assert notes == len(run.items)
    acts = [i for i in run.plan["items"] if i["kind"] == "act"]
    assert len(acts) >= 4 and all(i["needs_raw"] for i in acts), acts
    given = {x.value for x in run.items} | {"Basic " + base64.b64encode(f"svc:{x.value}".encode()).decode()
                                             for x in run.items}
    assert len(run.toy.state.revoked) >= 4 and set(run.toy.state.revoked) <= given
    assert set(run.exports) == {*EXPORTS, "dot --seed -"} and all(p.stat().st_size for p in run.exports.values())
    assert len(run.shots) >= 10 and len(run.errors) >= 40
    labels = [o[0] for o in run.outputs]
    assert "pull okta" in labels and "play apply --secrets-from FILE" in labels


def test_case_file_wal_and_dump_hold_no_canary(run: Run) -> None:
    leaks = _leaks(run)
    leaks.scan_file(run.case, "case file")
    assert run.wal, "the WAL was checkpointed away before it could be read"
    leaks.scan("case WAL", run.wal)
    con = sqlite3.connect(f"file:{run.case}?mode=ro", uri=True)
    try:
        leaks.scan("case SQL dump", "\n".join(con.iterdump()))
    finally:
        con.close()
    assert not leaks.found, "canaries in the case:\n" + leaks.report()


def test_every_export_holds_no_canary(run: Run) -> None:
    leaks = _leaks(run)
    for fmt, path in run.exports.items():
        leaks.scan_file(path, f"export {fmt}")
        if fmt == "sets":  # the SETs are JWTs: their claims, decoded
            for s in orjson.loads(path.read_bytes())["sets"]:
                payload = s["set"].split(".")[1]
                leaks.scan("export sets (decoded claims)",
                           base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert not leaks.found, "canaries in exports:\n" + leaks.report()


def test_no_command_output_holds_a_canary(run: Run) -> None:
    leaks = _leaks(run)
    for label, _code, out, err in run.outputs:
        if label in run.errors:
            continue
        leaks.scan(f"{label}: stdout", out)
        leaks.scan(f"{label}: stderr", err)
    assert not leaks.found, "canaries in command output:\n" + leaks.report()


def test_error_messages_do_not_echo_a_canary(run: Run) -> None:
    leaks = _leaks(run)
    for label, _code, out, err in run.outputs:
        if label in run.errors:
            leaks.scan(f"{label}: stderr", err)
            leaks.scan(f"{label}: stdout", out)
    assert not leaks.found, "canaries echoed in error messages:\n" + leaks.report()


def test_console_screenshots_hold_no_canary(run: Run) -> None:
    leaks = _leaks(run)
    for name, svg in run.shots.items():
        leaks.scan(f"screenshot {name}", svg)
        from tests.hardening import svg_text

        leaks.scan(f"screenshot {name} (text)", svg_text(svg))
    assert not leaks.found, "canaries on screen:\n" + leaks.report()


def test_nothing_else_stanch_wrote_holds_a_canary(run: Run) -> None:
    """Every file under the run's folder except the inputs the test wrote: the connector settings, staging
    leftovers, recent-cases list, exports, screenshots, the case and its side files."""
    leaks = _leaks(run)
    n = leaks.scan_tree(run.root, skip=run.inputs)
    assert n >= len(EXPORTS) + 5
    assert not leaks.found, "canaries in files:\n" + leaks.report()
