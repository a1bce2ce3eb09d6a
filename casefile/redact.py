"""Redaction on ingest: no raw secret reaches the case file.

Authorization-type headers, cookies, token-like query parameters, values under secret-named
fields and any substring with a known credential prefix become `[redacted sha256:ab12cd34…]`.
What was found is returned as fingerprints, so the event still links to the credential by key.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import re2

from casefile.secrets import (
    PREFIX_ALTERNATION,
    Fingerprint,
    find_secrets,
    fingerprint,
    is_secret_field,
    may_contain_secret,
    redaction_marker,
)

# Where a secret sits tells whether it is the credential the request presented ("auth") or one
# exposed in data ("data"): a credential a request carried is the one that request used.
AUTH_FIELDS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "apikey", "api_key", "x-vault-token", "access_token",
     "token", "x-auth-token", "private-token", "cookie"}
)
_QUERY_PARAM = re.compile(r"(?P<name>[A-Za-z0-9_.\-\[\]]+)=(?P<value>[^&#\s\"']*)")
# `Bearer X`, `DPoP X`, `Basic X`, `SSWS X` anywhere; GitHub's `token X` only right after an Authorization
# name (elsewhere "token" is an ordinary word: "openid token offline_access" is a scope list).
_AUTH_HEADER = re.compile(
    r"(?i)(\bbearer|\bdpop|\bbasic|\bssws|(?<=authorization: )token|(?<=authorization\": \")token"
    r"|(?<=authorization\":\")token|(?<=authorization=)token)\s+([A-Za-z0-9._~+/=!:-]{8,})"
)
_ALREADY = ("[redacted", "hmac-sha256:")

# The fast path: one RE2 (linear-time DFA) scan of a whole record for anything the full walk could
# change — a secret-looking key or query-parameter name, an auth scheme followed by a value, a known
# credential prefix, or a `\\u` escape (which could hide any of those). It is a superset test: a miss
# means nothing to redact. Python's `re` takes several times longer on a log line's alternations.
_EXACT_NAMES = (r"password|passwd|api_key|apikey|x-api-key|code|assertion|client_assertion|authorization"
                r"|proxy-authorization|cookie|set-cookie|private_key|session_id|sessionid|access_key_secret"
                r"|secretaccesskey|secret_access_key|x-vault-token")
_SUFFIX_NAMES = r"token|secret|password|secret[_-]?(?:access[_-]?)?key|private[_-]?key|api[_-]?key"
_FAST = re2.compile(
    # a JSON key: exact secret names, or any name ending in a secret suffix (mirrors is_secret_field)
    r'(?i:"(?:' + _EXACT_NAMES + r')"\s*:|(?:' + _SUFFIX_NAMES + r')"\s*:)'
    # a query or form parameter, likewise
    + r"|(?i:(?:^|[?&;\s\"\x00])(?:" + _EXACT_NAMES + r")=|(?:" + _SUFFIX_NAMES + r")=)"
    + r"|(?i:bearer|dpop|basic|ssws|authorization\W{1,4}token)\s+[A-Za-z0-9._~+/=!:-]{8,}"
    + r"|" + PREFIX_ALTERNATION + r"|\\u"
    # the prefixes whose shapes hold characters a URL encodes (`/`, `:`, `!`), percent-encoded in a query value
    + r"|hooks\.slack\.com%2[Ff]|00D[A-Za-z0-9]{12,15}%21|force%3[Aa]|1%2[Ff]%2[Ff][0-9A-Za-z_-]{30}"
)


@dataclass(slots=True)
class Found:
    """A secret found while redacting: its fingerprint and whether it was presented as auth."""

    fingerprint: Fingerprint
    where: str  # "auth" | "data"
    field: str


def _trivial(value: str) -> bool:
    v = value.strip()
    return not v or v in ("-", "null", "none", "None", "[redacted]") or v.startswith(_ALREADY)


_FIELD_RULE: dict[str, bool] = {}


def _secret_field(name: str) -> bool:
    """`is_secret_field`, memoised: field names repeat on every line of a log."""
    hit = _FIELD_RULE.get(name)
    if hit is None:
        hit = is_secret_field(name)
        if len(_FIELD_RULE) < 65536:
            _FIELD_RULE[name] = hit
    return hit


class Redactor:
    """Redacts one record at a time; `found` collects what it replaced."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: list[Found] = []

    def _mark(self, secret: str, where: str, field: str) -> str:
        fp = fingerprint(secret)
        self.found.append(Found(fp, where, field))
        return redaction_marker(secret)

    def text(self, value: str, field: str = "") -> str:
        """Redact secrets inside free text: auth schemes, token-like query parameters, known prefixes."""
        if _FAST.search(value) is None:
            return value
        if "=" in value:
            value = _QUERY_PARAM.sub(lambda m: self._query(m, field), value)
        if " " in value:
            value = _AUTH_HEADER.sub(
                lambda m: m.group(0) if m.group(2).startswith(_ALREADY) or m.group(2).startswith("[")
                else f"{m.group(1)} {self._mark(m.group(2), 'auth', field)}",
                value,
            )
        if may_contain_secret(value):
            out, last = [], 0
            for start, end, _shape in find_secrets(value):
                if start < last:
                    continue
                out.append(value[last:start])
                out.append(self._mark(value[start:end], "data", field))
                last = end
            out.append(value[last:])
            value = "".join(out)
        return value

    def _query(self, m: re.Match[str], field: str) -> str:
        name, val = m.group("name"), m.group("value")
        if _trivial(val):
            return m.group(0)
        if not _secret_field(name):
            # An ordinary parameter can still carry a credential, percent-encoded (`?next=https%3A%2F%2Fhooks…`):
            # look at it decoded.
            if "%" in val:
                decoded = unquote_plus(val)
                if may_contain_secret(decoded):
                    return f"{name}={self.text(decoded, name)}"
            return m.group(0)
        where = "auth" if name.lower() in AUTH_FIELDS else "data"
        return f"{name}={self._mark(unquote_plus(val), where, name)}"

    def field(self, name: str, value: str) -> str:
        """Redact the value of a field called `name`."""
        if _trivial(value):
            return value
        if _secret_field(name):
            low = name.lower()
            where = "auth" if low in AUTH_FIELDS or low.replace("_", "-") in AUTH_FIELDS else "data"
            return self._mark(value, where, name)
        return self.text(value, name)

    def walk(self, obj: Any, name: str = "") -> Any:
        """Redact a decoded JSON value in place where possible; returns the redacted value."""
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, str):
                    obj[k] = self.field(k, v)
                elif isinstance(v, dict | list):
                    obj[k] = self.walk(v, k)
            return obj
        if isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, str):
                    obj[i] = self.field(name, v)
                elif isinstance(v, dict | list):
                    obj[i] = self.walk(v, name)
            return obj
        if isinstance(obj, str):
            return self.text(obj, name)
        return obj


def needs_redaction(text: str | bytes) -> bool:
    """False only when `text` (a raw line, or a record serialised as JSON, as str or UTF-8 bytes) holds
    nothing `redact` would change."""
    return _FAST.search(text) is not None


def _collect(obj: Any, name: str, slots: list[tuple[Any, Any, str, str]], r: Redactor) -> None:
    """Secret-named fields are redacted on the spot; every other string value is listed for one joint scan."""
    items: Any = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for k, v in items:
        field: str = str(k) if isinstance(obj, dict) else name
        if isinstance(v, str):
            if _secret_field(field) and not _trivial(v):
                obj[k] = r.field(field, v)
            elif v:
                slots.append((obj, k, v, field))
        elif isinstance(v, dict | list):
            _collect(v, field, slots, r)


def redact(record: Any) -> tuple[Any, list[Found]]:
    """Redact a raw record (decoded JSON or a text line). Returns the redacted record and what was found.

    A record's string values are scanned together: one RE2 pass over them joined by NUL (which no pattern
    spans) finds the few values that need the full treatment, instead of one call per value.
    """
    r = Redactor()
    if not isinstance(record, dict | list):
        return r.walk(record), r.found
    slots: list[tuple[Any, Any, str, str]] = []
    _collect(record, "", slots, r)
    if slots:
        joined = "\x00".join(v for _, _, v, _ in slots)
        ends, pos = [], -1
        for _, _, v, _ in slots:
            pos += len(v) + 1
            ends.append(pos)  # index of the NUL after each value (one past the last value)
        hit: set[int] = set()
        for m in _FAST.finditer(joined):
            hit.add(bisect_left(ends, m.end() - 1))
        for i in sorted(hit):
            container, key, value, field = slots[i]
            container[key] = r.text(value, field)
    return record, r.found


def redact_keys(record: Any) -> tuple[Any, list[Found]]:
    """Redact credentials used as object keys (a CSV header cell, an attacker-chosen field name), which `redact`
    leaves alone. Call it when a record that `redact` went through still holds a credential shape
    (`may_contain_secret` on its JSON): only keys can. Objects are rebuilt so that their keys keep their order."""
    r = Redactor()

    def walk(obj: Any, name: str) -> None:
        if isinstance(obj, dict):
            if any(isinstance(k, str) and may_contain_secret(k) for k in obj):
                renamed = [(r.text(k, name) if isinstance(k, str) else k, v) for k, v in obj.items()]
                obj.clear()
                obj.update(renamed)
            for k, v in obj.items():
                if isinstance(v, dict | list):
                    walk(v, str(k))
        elif isinstance(obj, list):
            for v in obj:
                if isinstance(v, dict | list):
                    walk(v, name)

    walk(record, "")
    return record, r.found
