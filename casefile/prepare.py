"""Turning a parsed event into a row ready to store: the part of ingest that needs no database.

It runs in worker processes (see `casefile.pipeline`): time normalisation, redaction, key expansion
and hashing. What needs the case — occurrence numbers for events without a vendor id, credential
resolution, the insert itself — stays with the single writer in `casefile.ingest`.

A prepared event is a plain list (positions below), because chunks of them cross a process boundary
as one orjson document: several times cheaper than pickling objects, and this is the hot path.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
import re2

from casefile.audit import event_content_hash, event_row_hash
from casefile.geoip import GeoIP
from casefile.identity import REF_FACTS, KeyError_, expand_keys
from casefile.patterns import objects_read, resource_pattern
from casefile.records import ACTIONS, CredentialRef, Parsed, Problem
from casefile.redact import needs_redaction, redact, redact_keys
from casefile.secrets import PREFIX_ALTERNATION, Fingerprint, may_contain_secret
from casefile.timeutil import TimeError, to_micros, to_utc_iso

# Positions in a prepared event.
(P_LINE, P_ID, P_DIGEST, P_CRED_KEYS, P_CRED_FACTS, P_SUBJ_KEYS, P_SUBJ_FACTS, P_ROW_HASH, P_CONTENT_HASH,
 P_PATTERN, P_OBJECTS, P_EXPOSED, P_COLUMNS) = range(13)
# P_EXPOSED: credentials of a known shape found in the record's data (not presented as its auth): a list of
# [joined keys, facts (REF_FACTS order), field, shape, preview]. They become `exposures` rows (second order).
# P_COLUMNS onwards: the event columns, in audit.EVENT_CONTENT order minus `line` (which is P_LINE).
# P_PATTERN, P_OBJECTS: derived from the resource (casefile.patterns), not audited content.


# An AWS access key id is a key by design (`aws-key:AKIA…`), though the redactor knows its shape.
_AWS_KEY_ID = re.compile(r"aws-key:(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}")
_SPACE = re.compile(r"\s")
_SHAPE_PREFIX = re2.compile(PREFIX_ALTERNATION.encode())  # on bytes: RE2 on str pays for non-ASCII offsets


def _key(key: str, scrub: bool) -> str:
    """A key as stored: a credential inside redacted (when `scrub`), then whitespace percent-encoded."""
    if scrub and _AWS_KEY_ID.fullmatch(key) is None and needs_redaction(key):
        kind, _, rest = key.partition(":")
        key = f"{kind}:{redact(rest)[0]}"
    return _SPACE.sub(lambda m: f"%{ord(m.group()):02X}", key) if _SPACE.search(key) else key


def _stored_keys(keys: list[str] | None, scrub: bool) -> str | None:
    """Keys joined by spaces, as stored. The id part of `jti:`, `session:`, `vault-accessor:`… keys comes from log
    fields written by whoever held the token: whitespace in a key is percent-encoded (else the key would split
    into several, which could name another credential's key) and, when a scan found a credential shape among
    the event's columns (`scrub`), a credential inside a key is redacted."""
    if not keys:
        return None
    joined = " ".join(keys)
    if not scrub and len(joined.split()) == len(keys):
        return joined
    return " ".join(_key(k, scrub) for k in keys)


def _ref(ref: CredentialRef | None) -> tuple[list[str] | None, list[Any] | None]:
    if ref is None or not ref.keys:
        return None, None
    return expand_keys(ref.keys), [getattr(ref, f) for f in REF_FACTS]


def _field_name(name: str) -> str:
    """The name of the field a credential was found in, as stored: a field name is written by the log's writer too."""
    return name if not needs_redaction(name) else str(redact(name)[0])


def _ref_from_fingerprint(fp: Fingerprint) -> CredentialRef:
    return CredentialRef(keys=fp.keys, kind=fp.kind if fp.kind != "unknown" else "access", preview=fp.preview or None)


def _text(value: Any) -> str | None:
    """A canonical text column: strings as they are, other scalars as text (parsers may hand ints)."""
    if value is None or value.__class__ is str:
        return value
    return str(value)


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _int(value: Any) -> int | None:
    """An integer column: ints as they are, numeric strings converted, anything else dropped."""
    if value is None:
        return None
    if value.__class__ is not int:
        if isinstance(value, bool):
            return None
        try:
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            return None
    # SQLite stores 64-bit integers; a larger count or status is not a reading worth keeping.
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _scrub(value: str | None, raw_text: str, raw_found: list[Any]) -> str | None:
    """Canonical text fields get the raw record's redaction too (a resource may hold `?access_token=`).
    A value found verbatim in a raw record that needed no redaction needs none either."""
    if value is None or (not raw_found and value in raw_text) or not needs_redaction(value):
        return value
    out, _ = redact(value)
    return str(out)


def prepare(parsed: Parsed, format_name: str, source_id: int | None = None,
            geo: GeoIP | None = None) -> list[Any] | Problem:
    """Normalise, redact and hash one parsed event; a Problem when its time or keys are unusable."""
    ev = parsed.event
    try:
        t = ev.time
        iso = t if t[-1:] == "Z" and t[10:11] == "T" else to_utc_iso(t)
        ts = to_micros(iso)
    except (TimeError, ValueError, OverflowError, TypeError, IndexError):
        return Problem(parsed.line, "malformed", f"unreadable time {ev.time!r}")
    action = ev.action if ev.action in ACTIONS else "other"
    try:
        cred_list, cred_facts = _ref(ev.credential)
        subj_list, subj_facts = _ref(ev.subject)
    except KeyError_ as e:
        return Problem(parsed.line, "malformed", f"parser {format_name} gave a bad key: {e}")
    if geo is not None and ev.src_ip and (ev.country is None or ev.city is None or ev.asn is None):
        country, city, asn = geo.lookup(str(ev.src_ip))
        ev.country = ev.country or country  # the vendor's own fields win
        ev.city = ev.city or city
        ev.asn = ev.asn or asn
    # What is hashed is exactly what is stored (and what `verify` reads back), so types are fixed here.
    texts = [v if v is None or v.__class__ is str else str(v) for v in (ev.principal, ev.client, ev.src_ip, ev.user_agent, ev.country, ev.city, ev.asn,
                                ev.method, ev.resource, ev.vendor_type, ev.vendor_id, ev.request_id, ev.session_id)]
    # Every text column, credential fact and key gets the raw record's redaction: a log field is written by whoever
    # held the token, so a credential may sit in a user name, a user agent or an id as well as in the raw record.
    # One scan of the raw record and all of them, joined, decides whether anything needs a closer look.
    parts = [t for t in texts if t]
    for f in (cred_facts, subj_facts, cred_list, subj_list):
        if f:
            parts += [v for v in f if isinstance(v, str)]
    joined = "\x00".join(parts)
    found: list[Any] = []
    if ev.raw.__class__ is str:
        raw_text: str = ev.raw
        hit = needs_redaction(f"{raw_text}\x00{joined}")
        if hit and needs_redaction(raw_text):
            red, found = redact(raw_text)
            raw_text = str(red)
    else:
        try:
            raw_bytes = orjson.dumps(ev.raw)
        except TypeError as e:  # orjson.JSONEncodeError: nested past 255 levels (orjson reads 1024), a huge int
            return Problem(parsed.line, "malformed", f"record cannot be stored as JSON ({e})")
        raw_text = raw_bytes.decode()
        hit = needs_redaction(b"%s\x00%s" % (raw_bytes, joined.encode()))
        if hit and needs_redaction(raw_bytes):
            red, found = redact(ev.raw)
            red_bytes = orjson.dumps(red)
            raw_text = red_bytes.decode()
            # Values are clean now: a credential shape still there is in a key (a field name the writer chose).
            if _SHAPE_PREFIX.search(red_bytes) is not None and may_contain_secret(raw_text):
                red, in_keys = redact_keys(red)
                found.extend(in_keys)
                raw_text = orjson.dumps(red).decode()
    scrub = hit and needs_redaction(joined)
    if cred_list is None and found:
        auth = next((f for f in found if f.where == "auth"), None)
        if auth is not None:  # keys and a masked preview stanch made: nothing in them to scrub
            cred_list, cred_facts = _ref(_ref_from_fingerprint(auth.fingerprint))
    if scrub:
        texts = [_scrub(t, raw_text, found) for t in texts]
        cred_facts, subj_facts = (None if f is None else [_scrub(v, raw_text, found) if isinstance(v, str) else v
                                                          for v in f] for f in (cred_facts, subj_facts))
    cred_keys, subj_keys = _stored_keys(cred_list, scrub), _stored_keys(subj_list, scrub)
    principal, client, src_ip, user_agent, country, city, asn, method, resource, vendor_type, vendor_id, \
        request_id, session_id = texts
    vendor_id = vendor_id or None
    columns = [ts, iso, ev.vendor, action, _text(ev.outcome) or "unknown", cred_keys, subj_keys,
               principal, client, src_ip, user_agent, country, city, asn, method, resource,
               _int(ev.status),
               _int(ev.bytes), _int(ev.rows), vendor_type, vendor_id, request_id, session_id, raw_text]
    chash = event_content_hash([*columns, parsed.line])
    if vendor_id:
        event_id: str | None = f"{ev.vendor}:{vendor_id}"
        digest = None
        row_hash = event_row_hash(event_id, source_id, chash)  # type: ignore[arg-type]
    else:
        text = parsed.id_text if parsed.id_text is not None else raw_text
        event_id = row_hash = None
        digest = hashlib.sha256(f"{format_name}\n{text.strip()}".encode()).hexdigest()[:32]
    exposed = [[keys, [getattr(ref, f) for f in REF_FACTS], _field_name(f.field), f.fingerprint.shape,
                f.fingerprint.preview]
               for f in found if f.where == "data" and f.fingerprint.shape
               for ref in (_ref_from_fingerprint(f.fingerprint),)
               for keys in (" ".join(expand_keys(ref.keys)),) if keys not in (cred_keys, subj_keys)]
    return [parsed.line, event_id, digest, cred_keys, cred_facts, subj_keys, subj_facts, row_hash, chash,
            resource_pattern(resource), objects_read(ev.vendor, method, resource) or "", exposed, *columns]
