"""Issue 12, "prove it under load, faults and hostile input": the secrets canary, hostile text in the console,
kill -9 at scale, and the console reading while the CLI writes.

Shared here: the canaries (one obviously fake token per credential shape stanch knows, built at run time so no
source line looks like a credential) and `Leaks`, which finds a canary in any text or bytes — raw, URL-encoded,
or base64 (standard or urlsafe, padded or not, at any alignment inside a longer base64 run).

The full-scale crash runs are a command, not a CI test: `python -m tests.hardening --full` (see __main__.py).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import string
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import orjson

_ALNUM = string.ascii_letters + string.digits


def _fill(tag: str, n: int, alphabet: str = _ALNUM) -> str:
    """`n` characters from `alphabet`, deterministic per `tag`, starting with FAKE + CANARY so no one mistakes them."""
    head = "".join(c for c in "FAKECANARY" if c in alphabet)
    out, i = [head], 0
    while sum(len(p) for p in out) < n:
        digest = hashlib.sha256(f"{tag}:{i}".encode()).digest()
        out.append("".join(alphabet[b % len(alphabet)] for b in digest))
        i += 1
    return "".join(out)[:n]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt() -> str:
    """A JWT-shaped canary: real base64url JSON header and claims (issuer and jti are identifiers stanch may keep),
    and a signature of fake bytes."""
    header = {"alg": "RS256", "typ": "at+jwt", "kid": "FAKE-canary-kid"}
    claims = {"iss": "https://idp.fake.example", "sub": "canary-user", "aud": "api", "jti": "FAKE-canary-jti-1",
              "client_id": "canary-client", "scope": "read", "iat": 1_754_000_000, "exp": 4_102_444_800}
    return ".".join([_b64url(orjson.dumps(header)), _b64url(orjson.dumps(claims)),
                     _fill("jwt-sig", 43, _ALNUM + "-_")])


def fake_pem() -> str:
    lines = [_fill(f"pem-{i}", 64, _ALNUM + "+/") for i in range(3)]
    return "\n".join(["-----BEGIN " + "PRIVATE KEY-----", *lines, "-----END " + "PRIVATE KEY-----"])


@dataclass(frozen=True)
class Canary:
    """One fake credential. `shape` is the casefile.secrets shape it has ("" for one without a vendor prefix, which
    stanch can only recognise by where it sits: an Authorization header, a secret-named field or parameter).
    `needles` are the parts that must never appear anywhere (the whole value; for a PEM, each body line)."""

    name: str
    value: str
    shape: str
    kind: str  # what a log would call it: access, refresh, pat, api-key, ...

    @property
    def recognisable(self) -> bool:
        return bool(self.shape)

    @property
    def needles(self) -> tuple[str, ...]:
        if self.value.startswith("-----BEGIN"):
            return tuple(line for line in self.value.splitlines() if not line.startswith("-----"))
        return (self.value,)


def canaries() -> list[Canary]:
    """One canary per credential shape in casefile.secrets.SHAPES, plus the shapes stanch meets without a prefix
    (an Okta SSWS API token, an opaque bearer token, an AWS secret access key). Prefixes are split so that no
    source line carries a credential-looking literal."""
    gh = "gh"
    c = [
        Canary("github-fine-grained-pat", "github_" + "pat_" + "11FAKECANARY0" + _fill("ghfg", 69, _ALNUM + "_"),
               "github-fine-grained-pat", "pat"),
        Canary("github-classic-pat", gh + "p_" + _fill("ghp", 36), "github-classic-pat", "pat"),
        Canary("github-oauth", gh + "o_" + _fill("gho", 36), "github-oauth", "access"),
        Canary("github-user-to-server", gh + "u_" + _fill("ghu", 36), "github-user-to-server", "access"),
        Canary("github-server-to-server", gh + "s_" + _fill("ghs", 36), "github-server-to-server", "access"),
        Canary("github-refresh", gh + "r_" + _fill("ghr", 76), "github-refresh", "refresh"),
        Canary("gitlab-pat", "glpat" + "-" + _fill("glpat", 20, _ALNUM + "_-"), "gitlab-pat", "pat"),
        Canary("slack-token", "xox" + "b-" + "000000000000-000000000000-" + _fill("xoxb", 24), "slack-token",
               "api-key"),
        Canary("slack-app-token", "xa" + "pp-" + "1-AFAKE00000-000000000000-" + _fill("xapp", 40),
               "slack-app-token", "api-key"),
        Canary("slack-webhook", "https://hooks" + ".slack.com/services/TFAKE0000/BFAKE0000/" + _fill("hook", 24),
               "slack-webhook", "webhook"),
        Canary("google-access-token", "ya" + "29." + _fill("ya29", 72, _ALNUM + "_-"), "google-access-token",
               "access"),
        Canary("google-refresh-token", "1/" + "/0g" + _fill("g1", 40, _ALNUM + "_-"), "google-refresh-token",
               "refresh"),
        Canary("google-api-key", "AI" + "za" + _fill("aiza", 35, _ALNUM + "_-"), "google-api-key", "api-key"),
        Canary("google-client-secret", "GOC" + "SPX-" + _fill("gocspx", 28, _ALNUM + "_-"),
               "google-client-secret", "client-secret"),
        Canary("vault-service-token", "hv" + "s." + _fill("hvs", 91, _ALNUM + "_-"), "vault-service-token",
               "vault-token"),
        Canary("vault-batch-token", "hv" + "b." + _fill("hvb", 120, _ALNUM + "_-"), "vault-batch-token",
               "vault-token"),
        Canary("vault-recovery-token", "hv" + "r." + _fill("hvr", 60, _ALNUM + "_-"), "vault-recovery-token",
               "vault-token"),
        Canary("vault-legacy-token", "s" + "." + "FAKEcanary" + _fill("s.", 14), "vault-legacy-token",
               "vault-token"),
        Canary("stripe-secret-key", "sk" + "_live_" + _fill("sk", 32), "stripe-secret-key", "api-key"),
        Canary("stripe-webhook-secret", "wh" + "sec_" + _fill("whsec", 32), "stripe-webhook-secret",
               "client-secret"),
        Canary("salesforce-access-token", "00D" + "5g000004FAKE" + "!" + "AQ" + _fill("sfat", 96, _ALNUM + "._"),
               "salesforce-access-token", "access"),
        Canary("salesforce-sfdx-auth-url", "force" + "://PlatformCLI::5Aep861" + _fill("sfdx", 80, _ALNUM + "._")
               + "@acme.my.salesforce.example", "salesforce-sfdx-auth-url", "refresh"),
        Canary("jwt", fake_jwt(), "jwt", "access"),
        Canary("private-key", fake_pem(), "private-key", "private-key"),
        # No vendor prefix: recognised by position only.
        Canary("okta-api-token", "00" + _fill("ssws", 40, _ALNUM + "_-"), "", "api-key"),
        Canary("opaque-bearer", "FAKEcanaryOpaque" + _fill("opaque", 27, _ALNUM + "-_"), "", "access"),
        Canary("aws-secret-access-key", _fill("awssecret", 34) + "/FAKE+", "", "aws-secret"),
    ]
    return c


def recognisable() -> list[Canary]:
    return [c for c in canaries() if c.recognisable]


# ------------------------------------------------------------------------------------------------ finding leaks


def _b64_cores(data: bytes) -> set[bytes]:
    """Substrings that any base64 text (standard or urlsafe, padded or not) holding `data` at any alignment
    contains: the encoding of `data` after 0, 1 or 2 bytes of unknown context, minus the characters the unknown
    neighbours touch."""
    out: set[bytes] = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data)
        start = (k * 4 + 2) // 3 + (1 if k else 0)  # characters that depend on the bytes before
        core = enc.rstrip(b"=")
        core = core[start: len(core) - 3]  # the last group depends on the bytes after
        if len(core) >= 12:
            out.add(core)
            out.add(core.replace(b"+", b"-").replace(b"/", b"_"))
    return out


def forms(needle: str) -> dict[str, bytes]:
    """The ways a secret can appear in output: raw, URL-encoded (both flavours), base64 (exact and anywhere)."""
    raw = needle.encode()
    f = {"raw": raw, "url": quote(needle, safe="").encode(), "url-path": quote(needle).encode(),
         "url-plus": quote_plus(needle).encode(), "base64": base64.b64encode(raw),
         "base64-nopad": base64.b64encode(raw).rstrip(b"="), "base64url": base64.urlsafe_b64encode(raw),
         "base64url-nopad": base64.urlsafe_b64encode(raw).rstrip(b"=")}
    for i, core in enumerate(sorted(_b64_cores(raw))):
        f[f"base64-inside-{i}"] = core
    return f


@dataclass
class Leaks:
    """Collects where a canary showed up. `scan(where, data)` looks for every needle of every canary in every form;
    `found` lists (where, canary, form)."""

    items: list[Canary]
    found: list[tuple[str, str, str]] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._forms = [(c.name, name, b) for c in self.items for n in c.needles for name, b in forms(n).items()]

    def scan(self, where: str, data: str | bytes) -> None:
        blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        self.scanned.append(where)
        seen = set()
        for cname, fname, needle in self._forms:
            if (cname, where) not in seen and needle in blob:
                seen.add((cname, where))
                self.found.append((where, cname, fname))
        # JSON writers escape '/' (`\/`) and '+' (`\u002b`): look at the text unescaped too.
        if b"\\/" in blob or b"\\u" in blob:
            try:
                text = blob.decode("utf-8", "replace").replace("\\/", "/")
                text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
            except ValueError:
                return
            unescaped = text.encode("utf-8", "replace")
            for cname, fname, needle in self._forms:
                if (cname, where) not in seen and needle in unescaped:
                    seen.add((cname, where))
                    self.found.append((where + " (JSON-unescaped)", cname, fname))

    def scan_file(self, path: Path, label: str | None = None) -> None:
        where = label or str(path)
        data = path.read_bytes()
        self.scan(where, data)
        if data[:4] == b"PK\x03\x04":
            for name, member in zip_members(data):
                self.scan(f"{where}!{name}", member)
        if path.suffix == ".svg" or data[:5] == b"<svg ":
            self.scan(where + " (text)", svg_text(data.decode("utf-8", "replace")))

    def scan_tree(self, root: Path, skip: Iterable[Path] = ()) -> int:
        skipped = {p.resolve() for p in skip}
        n = 0
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.resolve() not in skipped:
                self.scan_file(p, str(p.relative_to(root)))
                n += 1
        return n

    def report(self) -> str:
        return "\n".join(f"  {w}: {c} ({f})" for w, c, f in self.found[:60])


def zip_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            yield info.filename, z.read(info)


def svg_text(svg: str) -> str:
    """The text a Textual SVG screenshot shows, line by line (tags dropped, entities decoded, nbsp as spaces)."""
    lines = []
    for m in re.finditer(r"<text[^>]*>(.*?)</text>", svg, flags=re.S):
        lines.append(html.unescape(m.group(1)).replace("\xa0", " "))
    return "".join(lines) + "\n" + html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")
