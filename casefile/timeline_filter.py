"""The timeline filter: what the console's `/` box accepts, and how a filter becomes SQL and full-text queries.

Filter syntax (the console's `/` box; words are separated by spaces and every one must match):

    word            some token of the event's full-text document (vendor, action, outcome, principal, client,
                    source IP, user agent, method, resource, vendor event type, credential keys, country, city)
                    starts with `word`, case-insensitively. Tokens keep `.` `-` `_` `:`, so `192.0.2` matches
                    192.0.2.40 and `token.` matches token.issue; other punctuation splits a word into several
                    words that must all match (`/services/data` = `services` and `data`).
    ip:PREFIX       the source IP starts with PREFIX
    action:PREFIX   the canonical action starts with PREFIX (`action:token` = token.issue, token.refresh, …)
    vendor:PREFIX   the vendor starts with PREFIX
    source:N        ingested from source N (`stanch info` lists the sources)
    cred:KEY        used, minted or revoked by the credential KEY names: a key (`sha256:…`, `jti:…`, …), a
                    credential number, or the start of a key (every credential with a key starting so; bare hex
                    is tried as a `sha256:` / `sha256/16:` key)
    "a b" / f:"a b" double quotes keep a value with spaces together

Several values of one field match any of them (`ip:192.0.2.7 ip:198.51.100.9`); words and different fields must
all match. Nothing typed is ever FTS5 or SQL syntax: a word is reduced to its tokens and each token is quoted
into the FTS5 query; field values are bound parameters (LIKE wildcards escaped).
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from casefile.schema import FTS_DOC_SQL

#: Fields a filter word can name.
FIELDS = ("ip", "cred", "action", "source", "vendor")
#: A `cred:` value naming at most this many credentials is read through their indexes.
FEW_CREDENTIALS = 16
_TOKEN = re.compile(r"[\w.\-:]+")  # FTS5 unicode61 with tokenchars '.-_:' (letters, digits and those four)
_WORD = re.compile(r'(?:(\w+):)?"([^"]*)"?|(\S+)')


# -- filter ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter: free-text tokens and field values (see the module docstring)."""

    text: str = ""
    words: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    vendors: tuple[str, ...] = ()
    sources: tuple[int, ...] = ()
    creds: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.words or self.ips or self.actions or self.vendors or self.sources or self.creds
                    or self.problems)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.words, self.ips, self.actions, self.vendors, self.sources, self.creds, self.problems)


def fold(text: str) -> str:
    """Lower-case `text` and drop diacritics, as the full-text tokenizer does."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """The full-text tokens of `text` (folded)."""
    return _TOKEN.findall(fold(text))


def parse_filter(text: str) -> Filter:
    """Parse what the responder typed. Never fails: a value that cannot match (`source:x`) becomes a problem,
    and a filter with problems matches nothing."""
    words: list[str] = []
    groups: dict[str, list[str]] = {f: [] for f in FIELDS}
    problems: list[str] = []
    for m in _WORD.finditer(text):
        name, quoted, bare = m.group(1), m.group(2), m.group(3)
        if quoted is not None:
            fname, value = (name.lower(), quoted) if name and name.lower() in FIELDS else (None, quoted)
            if name and fname is None:
                words.extend(tokens(name))
        else:
            head, sep, rest = bare.partition(":")
            fname, value = (head.lower(), rest) if sep and head.lower() in FIELDS else (None, bare)
        if fname is None:
            words.extend(tokens(value))
            continue
        value = value.strip()
        if not value:
            continue  # `ip:` while it is being typed
        if fname == "source" and not value.isdigit():
            problems.append(f"source:{value}: a source is a number (`stanch info` lists them)")
            continue
        groups[fname].append(value)
    return Filter(
        text=text, words=tuple(dict.fromkeys(words)), ips=tuple(dict.fromkeys(groups["ip"])),
        actions=tuple(dict.fromkeys(groups["action"])), vendors=tuple(dict.fromkeys(groups["vendor"])),
        sources=tuple(dict.fromkeys(int(v) for v in groups["source"])), creds=tuple(dict.fromkeys(groups["cred"])),
        problems=tuple(problems))


def refines(new: Filter, old: Filter) -> bool:
    """Whether every event `new` matches is matched by `old` too (typing more of a word, adding a word or a
    field): a read for `new` can start where the same read for `old` found its first match."""
    if new.problems or old.problems:
        return False
    if not all(any(n.startswith(o) for n in new.words) for o in old.words):
        return False
    for attr in ("ips", "actions", "vendors"):
        was, now = getattr(old, attr), getattr(new, attr)
        if was and not (now and all(any(n.lower().startswith(o.lower()) for o in was) for n in now)):
            return False
    if old.sources and not (new.sources and set(new.sources) <= set(old.sources)):
        return False
    return not old.creds or set(new.creds) == set(old.creds)


def _fts_term(token: str) -> str:
    # A token holds only letters, digits and . - _ : (it came from _TOKEN), so it cannot close the quotes.
    assert '"' not in token
    return f'"{token}"*'


def _fts_group(values: Sequence[str]) -> str | None:
    alts = []
    for v in values:
        toks = tokens(v)
        if not toks:
            return None  # a value with no token (`ip:::`?) gives the index nothing to narrow by
        alts.append(" AND ".join(_fts_term(t) for t in toks))
    if not alts:
        return None
    return alts[0] if len(alts) == 1 else "(" + " OR ".join(f"({a})" for a in alts) + ")"


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@lru_cache(maxsize=64)
def _patterns(spec: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((t, re.compile(r"(?<![\w.:\-])" + re.escape(t))) for t in spec.split("\x1f"))


def text_matches(doc: str | None, spec: str) -> int:
    """1 when every token of `spec` (joined by \\x1f) starts some token of `doc`: the full-text match, per row."""
    if not doc:
        return 0
    d = doc.lower() if doc.isascii() else fold(doc)
    for word, pattern in _patterns(spec):
        # The substring test is a fast C search; the pattern (which a lookbehind makes slow) only confirms it.
        if word not in d or not pattern.search(d):
            return 0
    return 1


# -- compiled filter ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """A filter compiled against one case: SQL predicates, the full-text query, the credentials it names."""

    filter: Filter
    predicate: str = "1"  # every condition, for an ordered scan
    params: list[Any] = field(default_factory=list)
    rest: str = "1"  # the conditions the full-text query does not imply (fields, credentials)
    rest_params: list[Any] = field(default_factory=list)
    fts: str | None = None
    cred_ids: list[int] | None = None  # a few credentials: read through their indexes
    cred_sql: str = ""  # the credential condition (kept out of `predicate` when cred_ids drive)
    cred_params: list[Any] = field(default_factory=list)
    cred_set: str = ""  # a query selecting every credential number the `cred:` values name
    cred_set_params: list[Any] = field(default_factory=list)
    others: str = "1"  # predicate without the credential condition
    others_params: list[Any] = field(default_factory=list)
    impossible: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.filter.empty

    @property
    def key(self) -> tuple[Any, ...]:
        return self.filter.key


def _resolve_credentials(conn: sqlite3.Connection, value: str) -> tuple[list[int], bool, str, list[Any]]:
    """What a `cred:` value names: (credential numbers, at most FEW_CREDENTIALS + 1 of them; whether that list
    is all of them; an SQL query selecting all of them; its parameters)."""
    v = value.strip()
    if v.isdigit():
        row = conn.execute("SELECT id FROM credentials WHERE id = ?", (int(v),)).fetchone()
        return ([int(row[0])], True, "", []) if row else ([], True, "", [])
    kind, sep, rest = v.partition(":")
    if sep and kind.lower() in ("sha256", "sha256/16"):
        v = f"{kind.lower()}:{rest.lower()}"
    exact = conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?", (v,)).fetchone()
    if exact is None and v.startswith("sha256:") and len(v) >= 7 + 16:  # a full hash names its gateway prefix too
        exact = conn.execute("SELECT credential_id FROM credential_keys WHERE key = ?",
                             (f"sha256/16:{v[7:23]}",)).fetchone()
    if exact is not None:
        return [int(exact[0])], True, "", []
    prefixes = [v] if sep else [v, f"sha256:{v.lower()}", f"sha256/16:{v.lower()}"]
    ids: list[int] = []
    complete = True
    sql: list[str] = []
    params: list[Any] = []
    for p in prefixes:
        hi = p + "\U0010ffff"
        got = conn.execute("SELECT DISTINCT credential_id FROM credential_keys WHERE key >= ? AND key < ? LIMIT ?",
                           (p, hi, FEW_CREDENTIALS + 1)).fetchall()
        complete = complete and len(got) <= FEW_CREDENTIALS
        ids.extend(int(c) for (c,) in got if int(c) not in ids)
        sql.append("SELECT credential_id FROM credential_keys WHERE key >= ? AND key < ?")
        params += [p, hi]
    return ids, complete and len(ids) <= FEW_CREDENTIALS, " UNION ".join(sql), params


def compile_filter(conn: sqlite3.Connection, flt: Filter) -> Plan:
    """Compile `flt` for the case behind `conn` (resolves `cred:` values to credentials)."""
    plan = Plan(flt, problems=list(flt.problems))
    if flt.problems:
        plan.impossible = True
    conds: list[tuple[str, list[Any]]] = []
    fts_parts: list[str] = []
    for col, values in (("src_ip", flt.ips), ("action", flt.actions), ("vendor", flt.vendors)):
        if values:
            conds.append(("(" + " OR ".join(f"{col} LIKE ? ESCAPE '\\'" for _ in values) + ")",
                          [_like(v) for v in values]))
            group = _fts_group(values)
            if group:
                fts_parts.append(group)
    if flt.sources:
        conds.append((f"source_id IN ({','.join('?' * len(flt.sources))})", list(flt.sources)))
    if flt.creds:
        ids: list[int] = []
        listed = True
        parts: list[str] = []
        part_params: list[Any] = []
        for value in flt.creds:
            found, complete, sql, params = _resolve_credentials(conn, value)
            if not found:
                plan.problems.append(f"cred:{value}: no credential has that key or number")
                continue
            ids += [i for i in found if i not in ids]
            listed = listed and complete
            if complete:
                parts.append(f"SELECT id FROM credentials WHERE id IN ({','.join('?' * len(found))})")
                part_params += found
            else:
                parts.append(sql)
                part_params += params
        if not ids:
            plan.impossible = True
        else:
            plan.cred_set, plan.cred_set_params = " UNION ".join(parts), part_params
        if ids and listed and len(ids) <= FEW_CREDENTIALS:
            in_sql = ",".join("?" * len(ids))
            plan.cred_sql = f"(credential_id IN ({in_sql}) OR subject_credential_id IN ({in_sql}))"
            plan.cred_params = ids + ids
            plan.cred_ids = ids
        elif ids:
            union = plan.cred_set
            plan.cred_sql = f"(credential_id IN ({union}) OR subject_credential_id IN ({union}))"
            plan.cred_params = part_params + part_params
    others = list(conds)
    if flt.words:
        fts_parts.extend(_fts_term(w) for w in flt.words)
        others.append((f"stanch_tl_text({FTS_DOC_SQL}, ?)", ["\x1f".join(flt.words)]))
    rest = list(conds)
    if plan.cred_sql:
        rest.append((plan.cred_sql, plan.cred_params))
    plan.others = " AND ".join(c for c, _ in others) or "1"
    plan.others_params = [p for _, ps in others for p in ps]
    plan.rest = " AND ".join(c for c, _ in rest) or "1"
    plan.rest_params = [p for _, ps in rest for p in ps]
    every = others + ([(plan.cred_sql, plan.cred_params)] if plan.cred_sql else [])
    plan.predicate = " AND ".join(c for c, _ in every) or "1"
    plan.params = [p for _, ps in every for p in ps]
    plan.fts = " AND ".join(fts_parts) if fts_parts else None
    return plan
