"""Credential identity: keys that name one secret resolve to one credential row.

Evidence that two keys name the same secret (one event giving both) merges their credentials.
Client, app and principal are facts about a credential, never keys.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from casefile.schema import move_rollups
from casefile.timeutil import micros_to_iso

KEY_KINDS = ("sha256", "sha256/16", "jti", "vault-accessor", "vault-hmac", "okta-token", "github-token",
             "aws-key", "sf-token", "entra-key", "kong-credential", "session")

_FACTS = ("kind", "issuer", "client", "principal", "scopes", "issued_at", "expires_at", "binding", "preview")
# The facts a CredentialRef carries besides its keys, in the order prepared events and `resolve_keys` use.
REF_FACTS = ("kind", "issuer", "client", "principal", "scopes", "preview", "binding", "issued_at", "expires_at")


# Kinds a log can only guess (a gateway sees a bearer token and calls it `access`) give way to what an issuer
# says (`refresh`, `vault-token`) when the two views of one secret meet.
_GENERIC_KINDS = ("unknown", "access")
_KIND_SQL = (f"kind = CASE WHEN (kind IS NULL OR kind IN {_GENERIC_KINDS}) AND coalesce(?, 'unknown') NOT IN"
             f" {_GENERIC_KINDS} THEN ? ELSE coalesce(kind, ?) END")


class KeyError_(ValueError):
    """A credential key that is not of a known kind."""


def normalise_key(key: str) -> str:
    """Canonical spelling of a key (`sha256:` hex lower-cased); raises KeyError_ for an unknown kind."""
    kind, sep, rest = key.partition(":")
    if not sep or kind not in KEY_KINDS or not rest:
        raise KeyError_(f"{key!r} is not a credential key; expected one of {', '.join(k + ':' for k in KEY_KINDS)}")
    if kind in ("sha256", "sha256/16"):
        rest = rest.lower()
    return f"{kind}:{rest}"


def expand_keys(keys: tuple[str, ...]) -> list[str]:
    """The keys of a ref plus those they imply: a full `sha256:` implies its `sha256/16:` prefix."""
    out: list[str] = []
    for k in keys:
        k = normalise_key(k)
        if k not in out:
            out.append(k)
        if k.startswith("sha256:"):
            short = f"sha256/16:{k[7:23]}"
            if short not in out:
                out.append(short)
    return out


@dataclass(slots=True)
class _Facts:
    first: int | None = None
    last: int | None = None
    values: dict[str, str] = field(default_factory=dict)


class Resolver:
    """Resolves credential keys to credential ids inside an ingest, caching keys and batching fact updates."""

    def __init__(self, conn: sqlite3.Connection, source_id: int | None = None) -> None:
        self.conn = conn
        self.source_id = source_id
        self._cache: dict[str, int] = {}  # key -> credential
        self._by_keys: dict[str, int] = {}  # an event's joined keys -> credential (the hot path)
        self._facts: dict[int, _Facts] = {}
        self.created = 0
        self.merged = 0
        self.redirect: dict[int, int] = {}

    def _lookup(self, key: str) -> int | None:
        cid = self._cache.get(key)
        if cid is not None:
            return cid
        row = self.conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self._cache[key] = row[0]
            return int(row[0])
        return None

    def resolve_keys(self, keys: str, facts: list[Any], ts: int) -> int:
        """Credential id for space-joined, already expanded `keys`; `facts` in `REF_FACTS` order."""
        cid = self._by_keys.get(keys)
        if cid is None:
            cid = self._resolve_slow(tuple(keys.split(" ")), str(facts[0] or "unknown"))
            if len(self._by_keys) >= 1 << 20:
                self._by_keys.clear()
            self._by_keys[keys] = cid
        f = self._facts.get(cid)
        if f is None:
            f = self._facts[cid] = _Facts()
        if f.first is None or ts < f.first:
            f.first = ts
        if f.last is None or ts > f.last:
            f.last = ts
        if len(f.values) < len(REF_FACTS):
            for name, v in zip(REF_FACTS, facts, strict=True):
                if v and name not in f.values and not (name == "kind" and v == "unknown"):
                    f.values[name] = str(v)
        return cid

    def resolve_span(self, keys: str, facts: list[Any], first: int, last: int) -> int:
        """`resolve_keys` for a credential seen from `first` to `last` (µs) in one chunk."""
        cid = self.resolve_keys(keys, facts, first)
        f = self._facts[cid]
        if f.last is None or last > f.last:
            f.last = last
        return cid

    def resolve_untimed(self, keys: list[str], kind: str, preview: str | None) -> int:
        """Credential id for expanded `keys` seen outside any event (found in data): no first/last seen."""
        cid = self._resolve_slow(tuple(keys), kind)
        self.conn.execute("UPDATE credentials SET preview = coalesce(preview, ?), kind = CASE WHEN kind IS NULL OR"
                          " kind = 'unknown' THEN ? ELSE kind END WHERE id = ?", (preview, kind, cid))
        return cid

    def _resolve_slow(self, keys: tuple[str, ...], kind: str) -> int:
        ids = {cid for cid in (self._lookup(k) for k in keys) if cid is not None}
        if not ids:
            cur = self.conn.execute("INSERT INTO credentials(kind) VALUES (?)", (kind,))
            cid = int(cur.lastrowid or 0)
            self.created += 1
        else:
            cid = min(ids)
            for other in sorted(ids - {cid}):
                self._merge(other, cid)
        for k in keys:
            if self._cache.get(k) != cid:
                self.conn.execute(
                    "INSERT INTO credential_keys(key, credential_id, source_id) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET credential_id = excluded.credential_id",
                    (k, cid, self.source_id),
                )
                self._cache[k] = cid
        return cid

    def final(self, cid: int | None) -> int | None:
        """Where a credential id ended up after merges in this ingest (rows not yet inserted hold old ids)."""
        while cid is not None and cid in self.redirect:
            cid = self.redirect[cid]
        return cid

    def _merge(self, loser: int, winner: int) -> None:
        """Two keys met in one event: they name one secret. Fold `loser` into `winner`."""
        c = self.conn
        c.execute("UPDATE credential_keys SET credential_id = ? WHERE credential_id = ?", (winner, loser))
        c.execute("UPDATE events SET credential_id = ? WHERE credential_id = ?", (winner, loser))
        c.execute("UPDATE events SET subject_credential_id = ? WHERE subject_credential_id = ?", (winner, loser))
        move_rollups(c, loser, winner)
        row = c.execute(f"SELECT {', '.join(_FACTS)}, first_seen, last_used, status FROM credentials WHERE id = ?",
                        (loser,)).fetchone()
        if row is not None:
            sets = ", ".join(_KIND_SQL if n == "kind" else f"{n} = coalesce({n}, ?)" for n in _FACTS)
            values = [x for n, v in zip(_FACTS, row[: len(_FACTS)], strict=True)
                      for x in ((v, v, v) if n == "kind" else (v,))]
            c.execute(f"UPDATE credentials SET {sets} WHERE id = ?", (*values, winner))
            c.execute(
                "UPDATE credentials SET first_seen = min(coalesce(first_seen, ?), coalesce(?, first_seen)),"
                " last_used = max(coalesce(last_used, ?), coalesce(?, last_used)) WHERE id = ?",
                (row[-3], row[-3], row[-2], row[-2], winner),
            )
            c.execute("DELETE FROM credentials WHERE id = ?", (loser,))
        for k, v in list(self._cache.items()):
            if v == loser:
                self._cache[k] = winner
        for k, v in list(self._by_keys.items()):
            if v == loser:
                self._by_keys[k] = winner
        moved = self._facts.pop(loser, None)
        if moved is not None:
            target = self._facts.setdefault(winner, _Facts())
            for name, value in moved.values.items():
                target.values.setdefault(name, value)
            if moved.first is not None and (target.first is None or moved.first < target.first):
                target.first = moved.first
            if moved.last is not None and (target.last is None or moved.last > target.last):
                target.last = moved.last
        self.redirect[loser] = winner
        self.merged += 1

    def flush(self) -> None:
        """Write the facts gathered since the last flush (call inside the batch transaction)."""
        for cid, f in self._facts.items():
            sets: list[str] = []
            params: list[str | None] = []
            for n, v in f.values.items():
                if n == "kind":  # a specific kind (refresh, vault-token) beats a guess (access) or unknown
                    sets.append(_KIND_SQL)
                    params += [v, v, v]
                else:
                    sets.append(f"{n} = coalesce({n}, ?)")
                    params.append(v)
            first = micros_to_iso(f.first) if f.first is not None else None
            last = micros_to_iso(f.last) if f.last is not None else None
            sets.append("first_seen = CASE WHEN first_seen IS NULL OR first_seen > ? THEN ? ELSE first_seen END")
            params += [first, first]
            sets.append("last_used = CASE WHEN last_used IS NULL OR last_used < ? THEN ? ELSE last_used END")
            params += [last, last]
            self.conn.execute(f"UPDATE credentials SET {', '.join(sets)} WHERE id = ?", (*params, cid))
        self._facts.clear()

    def forget(self) -> None:
        """Drop cached keys (after a rolled-back batch the cache may name rows that no longer exist)."""
        self._cache.clear()
        self._by_keys.clear()
        self._facts.clear()
        self.redirect.clear()
