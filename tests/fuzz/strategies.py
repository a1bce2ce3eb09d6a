"""What the parser fuzzer feeds: seeds from the committed fixtures, hostile values, a byte/line/structure mutator
and hypothesis strategies that build records of each format family from scratch.

Format families are decided by the *shape* of the input, not by the vendor (one format can read several
shapes, e.g. Okta System Log as JSON lines or as a JSON array):

| family      | shape                                                    | seeds (tests/fixtures/…)                           |
|-------------|----------------------------------------------------------|----------------------------------------------------|
| `jsonl`     | one JSON object per line                                 | every `*.jsonl` / JSON-lines `.log` fixture        |
| `json-doc`  | one document: array, wrapper object (`Records`, `value`, | arrays, Graph pages, `{"Records": …}`, Kong batch, |
|             | `records`, `items`), or objects pretty-printed over lines| SOQL response, pretty Kong and OpenBao objects     |
| `csv`       | a header row and rows, read by column name               | Okta admin export, Salesforce EventLogFile, Entra  |
|             |                                                          | portal sign-ins                                    |
| `text`      | one free-text line per record, read by regex             | nginx/Apache combined, Envoy (text, JSON-wrapped), |
|             |                                                          | Keycloak server log                                |

There is no XML log format among the parsers (the only XML stanch reads is AWS API answers, not logs).
Every registered format has seeds in at least one family (`test_every_format_has_seeds` checks it).

Everything here is deterministic for a given `random.Random` (the mutator) or hypothesis seed (the strategies).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.conftest import fake_token

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAMILIES = ("jsonl", "json-doc", "csv", "text")
NOT_LOGS = {"bloodhound"}
# Fixture folders whose lines are free text (regex parsers); a JSON line among them stays a text-family seed.
TEXT_FORMATS = {"nginx-combined", "envoy-access"}

MB = 1 << 20
DEEP = 10_000  # nesting depth of the deeply nested JSON values

# ---------------------------------------------------------------------------------------------- hostile values

ANSI = ("\x1b[31mred\x1b[0m", "\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x1b[?1049h", "\x1b]8;;file:///etc/passwd\x1b\\x\x1b]8;;\x1b\\",
        "\x9b31m", "\x07\x08\x7f")
RICH = ("[bold red]alert[/]", "[link=file:///etc/passwd]click[/link]", "[/]", "[red", "[@click=app.quit]x[/]",
        "\\[escaped]", ":warning:")
BIDI = ("\u202e", "\u202dabc\u202c", "\u2066x\u2069", "\u200f\u200e", "evil\u202etxt.exe", "\u061c", "\ufeff",
        "\u200b")
FORMULA = ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\",\"y\")",
           "=1+2;=3", "'=1")
TRAVERSAL = ("../../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/shadow", "%2e%2e%2f%2e%2e%2f", "\x00.txt")
ODD_TEXT = ("", " ", "-", "null", "None", "undefined", "NaN", "Infinity", "\x00", "\t", "\r", "\u2028\u2029",
            "é" * 3, "𝕏" * 3, "\ud7ff\ue000\uffff", "\"", "'", "\\", "{", "}", "[", "]", "%s%n%x", "${jndi:ldap://x/a}",
            "{{7*7}}", "<script>alert(1)</script>", "a" * 300)
ODD_TIMES = ("0", "-1", "1e20", "9999-99-99T99:99:99Z", "2024-02-30T00:00:00Z", "2024-13-01", "0000-00-00",
             "1970-01-01T00:00:00Z", "99999999999999999999", "10/Oct/2000:13:55:36 -0700", "2024-01-01T00:00:00+25:00",
             "2024-01-01T00:00:00.123456789123Z", "T", "Z", "24:00:00", "2024-W01-1", "17/May/2015:10:05:03 +9999")
ODD_NUMBERS: tuple[Any, ...] = (0, -1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308, 2**53 + 1)
HOSTILE_TEXT = ANSI + RICH + BIDI + FORMULA + TRAVERSAL + ODD_TEXT + ODD_TIMES

# Byte sequences that are not UTF-8: a stray continuation, a cut sequence, an overlong encoding, a UTF-8
# encoded surrogate, a code point past U+10FFFF, bytes that never occur.
INVALID_UTF8 = (b"\x80", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xfe", b"\xff\xfe", b"\xf8\x88\x80\x80\x80")
# JSON texts that are valid for some decoders and not others.
ODD_JSON = (b'"\\ud800"', b'"\\udc00\\ud800"', b"1e999", b"-1e999", b"NaN", b"Infinity", b"123456789012345678901234567890",
            b'"\\u0000"', b"[]", b"{}", b"null", b"true", b'{"":""}', b'{"a":1,"a":2}')


# ---------------------------------------------------------------------------------------------- canary tokens


def canaries() -> list[str]:
    """One obviously fake credential of each shape the redactor knows by prefix, built at runtime."""
    body = fake_token("", 40)
    return [
        "ghp_" + fake_token("", 36, "g"),
        "github_pat_" + fake_token("", 40, "p"),
        "gho_" + fake_token("", 36, "o"),
        "glpat-" + fake_token("", 20, "l"),
        "xoxb-" + fake_token("", 30, "s"),
        "hvs." + fake_token("", 30, "v"),
        "ya29." + fake_token("", 40, "y"),
        "AIza" + fake_token("", 35, "a"),
        "GOCSPX-" + fake_token("", 28, "c"),
        "sk_test_" + fake_token("", 24, "k"),
        "eyJ" + fake_token("", 20, "h") + ".eyJ" + fake_token("", 20, "b") + "." + body[:20],
    ]


# ---------------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """One committed fixture: its format, family and content."""

    path: str  # relative to tests/fixtures
    format: str
    family: str
    data: bytes

    @property
    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")


def family_of(fmt: str, name: str, data: bytes) -> str:
    """The family of a fixture from its shape (see the module docstring)."""
    if name.endswith(".csv"):
        return "csv"
    if fmt in TEXT_FORMATS:
        return "text"
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith((b"{", b"[")):
        return "text"
    if stripped.startswith(b"["):
        return "json-doc"
    nonblank = [ln for ln in data.split(b"\n") if ln.strip()]
    first = nonblank[0].strip()
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return "json-doc"  # pretty-printed objects
    if isinstance(obj, dict) and len(nonblank) == 1 and any(isinstance(v, list) and len(v) > 1 for v in obj.values()):
        return "json-doc"  # a single-line wrapper document
    return "jsonl"


@cache
def seeds() -> tuple[Seed, ...]:
    """Every log fixture listed in an `expected.json`, with its family."""
    out: list[Seed] = []
    for spec in sorted(FIXTURES.glob("*/expected.json")):
        if spec.parent.name in NOT_LOGS:
            continue
        for name, exp in sorted(json.loads(spec.read_text()).items()):
            data = (spec.parent / name).read_bytes()
            if len(data) > 256 << 10:  # the 2 MB nginx sample: its first 400 lines are plenty
                data = b"\n".join(data.split(b"\n")[:400]) + b"\n"
            out.append(Seed(f"{spec.parent.name}/{name}", exp["format"], family_of(exp["format"], name, data), data))
    return tuple(out)


def seeds_of(family: str) -> list[Seed]:
    return [s for s in seeds() if s.family == family]


@cache
def all_lines() -> tuple[bytes, ...]:
    """Every non-blank line of every seed, for splicing lines of one format into another."""
    return tuple(ln for s in seeds() for ln in s.lines if ln.strip())


# ---------------------------------------------------------------------------------------------- JSON helpers


def deep_json(depth: int = DEEP, kind: str = "mixed") -> bytes:
    """A JSON value nested `depth` deep (arrays, objects or both)."""
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"a":[' * (depth // 2) + b"1" + b"]}" * (depth // 2)


def _paths(obj: Any, prefix: tuple[Any, ...] = (), out: list[tuple[Any, ...]] | None = None,
           limit: int = 400) -> list[tuple[Any, ...]]:
    """Paths to every value inside a decoded JSON value (breadth limited)."""
    if out is None:
        out = []
    if len(out) >= limit:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            _paths(v, (*prefix, k), out, limit)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            out.append((*prefix, i))
            _paths(v, (*prefix, i), out, limit)
    return out


def dumps(obj: Any, pretty: bool = False) -> bytes:
    """JSON text of `obj`: orjson where it can (64-bit ints, 255 levels), else the standard library."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None,
                          separators=None if pretty else (",", ":")).encode("utf-8", "surrogatepass")


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


def string_paths(obj: Any) -> list[tuple[Any, ...]]:
    return [p for p in _paths(obj) if isinstance(_get(obj, p), str)]


# ---------------------------------------------------------------------------------------------- the mutator


_PUNCT = tuple(bytes([c]) for c in b'{}[]",:\\\n\r\t\x00')


class Mutator:
    """Byte, line and structure mutations of seed samples, driven by one `random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ops: list[tuple[str, Callable[[bytes], bytes]]] = [
            ("flip", self.flip), ("insert", self.insert), ("delete", self.delete), ("truncate-line", self.truncate_line),
            ("duplicate-line", self.duplicate_line), ("drop-line", self.drop_line), ("swap-lines", self.swap_lines),
            ("splice", self.splice), ("json-value", self.json_value), ("json-key", self.json_key),
            ("text-field", self.text_field), ("invalid-utf8", self.invalid_utf8), ("line-ends", self.line_ends),
            ("hostile-line", self.hostile_line), ("truncate", self.truncate), ("numbers", self.numbers),
        ]

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, seed: Seed) -> bytes:
        """A piece of a seed: a run of whole lines for line families, the whole document for `json-doc` (which
        is small), sometimes the header plus rows for CSV."""
        if seed.family == "json-doc":
            return seed.data
        lines = seed.lines
        if lines and lines[-1] == b"":
            lines = lines[:-1]
        k = min(len(lines), self.rng.choice((1, 2, 3, 5, 8, 20)))
        if seed.family == "csv":
            header = lines[:1]
            body = lines[1:]
            start = self.rng.randrange(max(1, len(body) - k + 1)) if body else 0
            return b"\n".join(header + body[start:start + k]) + b"\n"
        start = self.rng.randrange(max(1, len(lines) - k + 1))
        return b"\n".join(lines[start:start + k]) + b"\n"

    def mutate(self, data: bytes, n: int | None = None) -> tuple[bytes, list[str]]:
        """`data` with 1-4 random mutations applied; returns the names of the mutations too."""
        names = []
        for _ in range(n if n is not None else self.rng.choice((1, 1, 2, 2, 3, 4))):
            name, op = self.rng.choice(self.ops)
            data = op(data)
            names.append(name)
        return data, names

    # -- byte level --------------------------------------------------------------------------------
    def _pos(self, data: bytes) -> int:
        return self.rng.randrange(len(data) + 1)

    def flip(self, data: bytes) -> bytes:
        if not data:
            return data
        b = bytearray(data)
        for _ in range(self.rng.choice((1, 1, 2, 8))):
            i = self.rng.randrange(len(b))
            b[i] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def insert(self, data: bytes) -> bytes:
        i = self._pos(data)
        what = self.rng.choice((
            bytes([self.rng.randrange(256)]),
            self.rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass"),
            self.rng.choice(_PUNCT),
            self.rng.choice(INVALID_UTF8),
            self.rng.choice(ODD_JSON),
        ))
        return data[:i] + what + data[i:]

    def delete(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self.rng.randrange(len(data))
        return data[:i] + data[i + self.rng.choice((1, 1, 2, 5, 40)):]

    def truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data)]

    def invalid_utf8(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + self.rng.choice(INVALID_UTF8) + data[i:]

    # -- line level ----------------------------------------------------------------------------------
    def _lines(self, data: bytes) -> list[bytes]:
        return data.split(b"\n")

    def truncate_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self.rng.randrange(len(lines))
        lines[i] = lines[i][: self.rng.randrange(len(lines[i]) + 1)]
        return b"\n".join(lines)

    def duplicate_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self.rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return b"\n".join(lines)

    def drop_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        if len(lines) > 1:
            del lines[self.rng.randrange(len(lines))]
        return b"\n".join(lines)

    def swap_lines(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)

    def splice(self, data: bytes) -> bytes:
        """A line of another fixture (often another format) put in."""
        lines = self._lines(data)
        other = self.rng.choice(all_lines())
        if len(other) > 4096:
            other = other[:4096]
        lines.insert(self.rng.randrange(len(lines) + 1), other)
        return b"\n".join(lines)

    def line_ends(self, data: bytes) -> bytes:
        """CRLF, lone CR, form feed, a BOM, NUL or U+2028 where lines end."""
        sep = self.rng.choice((b"\r\n", b"\r", b"\n\n\n", b"\x0c\n", b"\n\xef\xbb\xbf", b"\x00\n", b"\xe2\x80\xa8",
                               b"\n \t \n"))
        if self.rng.random() < 0.5:
            return data.replace(b"\n", sep)
        lines = self._lines(data)
        i = self.rng.randrange(len(lines))
        return b"\n".join(lines[:i]) + sep + b"\n".join(lines[i:])

    def hostile_line(self, data: bytes) -> bytes:
        """A whole hostile line: empty JSON values, deep nesting, a bare scalar, control characters."""
        line = self.rng.choice((
            b"", b" ", b"\xef\xbb\xbf", b"{}", b"[]", b"null", b"1", b'"x"', b"{", b"}", b"[", b"]", b"[{}]",
            b'{"Records": []}', b'{"records": [1, "x", null]}', b'{"value": {}}', b'{"items": "x"}',
            deep_json(200, "array"), deep_json(200, "object"), self.rng.choice(ODD_JSON),
            self.rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass"), b"\x1b[31m\x00\x7f",
        ))
        lines = self._lines(data)
        lines.insert(self.rng.randrange(len(lines) + 1), line)
        return b"\n".join(lines)

    # -- structure aware -----------------------------------------------------------------------------
    def _json_line(self, data: bytes, edit: Callable[[Any], Any]) -> bytes:
        """Apply `edit` to a decoded JSON line (or to the whole document), re-encoding it the same way."""
        lines = self._lines(data)
        candidates = [i for i, ln in enumerate(lines) if ln.lstrip()[:1] in (b"{", b"[")]
        whole = False
        try:
            doc = orjson.loads(data)
            whole = True
        except orjson.JSONDecodeError:
            doc = None
        if whole:
            pretty = b"\n  " in data
            out = edit(doc)
            return dumps(out, pretty) + b"\n"
        self.rng.shuffle(candidates)
        for i in candidates[:3]:
            try:
                obj = orjson.loads(lines[i])
            except orjson.JSONDecodeError:
                continue
            lines[i] = dumps(edit(obj))
            return b"\n".join(lines)
        return data

    def hostile_value(self) -> Any:
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice(HOSTILE_TEXT)
        if r < 0.6:
            return self.rng.choice(ODD_NUMBERS)
        if r < 0.75:
            return self.rng.choice((None, True, False, [], {}, [None], {"": None}, ["x", 1], {"a": {"b": []}}))
        if r < 0.85:
            return "".join(self.rng.choice(HOSTILE_TEXT) for _ in range(4))
        return json.loads(deep_json(self.rng.choice((50, 400)), self.rng.choice(("array", "object", "mixed"))))

    def json_value(self, data: bytes) -> bytes:
        """A value somewhere in a JSON record replaced by a hostile one (wrong type, odd text, deep nesting)."""
        def edit(obj: Any) -> Any:
            paths = _paths(obj)
            if not paths:
                return self.hostile_value()
            for _ in range(self.rng.choice((1, 1, 2, 4))):
                _set(obj, self.rng.choice(paths), self.hostile_value())
                paths = _paths(obj)
                if not paths:
                    break
            return obj
        return self._json_line(data, edit)

    def json_key(self, data: bytes) -> bytes:
        """A key removed, renamed to a hostile or case-changed name, or a hostile key added."""
        def edit(obj: Any) -> Any:
            dicts = [p for p in _paths(obj) if isinstance(_get(obj, p), dict)]
            target = _get(obj, self.rng.choice(dicts)) if dicts and self.rng.random() < 0.6 else obj
            if not isinstance(target, dict):
                return obj
            keys = list(target)
            r = self.rng.random()
            if keys and r < 0.4:
                del target[self.rng.choice(keys)]
            elif keys and r < 0.7:
                k = self.rng.choice(keys)
                target[self.rng.choice((k.upper(), k.lower(), k + " ", "\x1b[31m" + k, ""))] = target.pop(k)
            else:
                target[self.rng.choice(HOSTILE_TEXT)] = self.hostile_value()
            return obj
        return self._json_line(data, edit)

    def numbers(self, data: bytes) -> bytes:
        """A run of digits replaced by an extreme number."""
        digits = [i for i in range(len(data)) if 48 <= data[i] <= 57]
        if not digits:
            return data
        i = self.rng.choice(digits)
        j = i
        while j < len(data) and 48 <= data[j] <= 57:
            j += 1
        return data[:i] + self.rng.choice((b"0", b"99999999999999999999999", b"-1", b"1e999", b"4294967296")) + data[j:]

    def text_field(self, data: bytes) -> bytes:
        """A space- or quote-delimited field of a line (or a CSV cell) replaced by a hostile value."""
        lines = self._lines(data)
        i = self.rng.randrange(len(lines))
        line = lines[i].decode("utf-8", "surrogateescape")
        value = str(self.hostile_value()) if self.rng.random() < 0.3 else self.rng.choice(HOSTILE_TEXT)
        if b"," in lines[i] and self.rng.random() < 0.5:
            try:
                rows = list(csv.reader([line]))
            except csv.Error:
                rows = []
            if rows and rows[0]:
                row = rows[0]
                row[self.rng.randrange(len(row))] = value
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(row)
                lines[i] = buf.getvalue().encode("utf-8", "surrogateescape")
                return b"\n".join(lines)
        parts = line.split(self.rng.choice((" ", '"')))
        parts[self.rng.randrange(len(parts))] = value
        lines[i] = (" " if " " in line else '"').join(parts).encode("utf-8", "surrogateescape")
        return b"\n".join(lines)

    # -- the big ones (costly: used for a few inputs per family) --------------------------------------
    def big(self, seed: Seed, what: str) -> bytes:
        """`seed`'s sample with a 1 MB line, or a value nested 10,000 deep, put in."""
        data = self.sample(seed)
        if what == "mb-line":
            filler = self.rng.choice((b"A", b"\\", b'"', b"{", b" ", b"\xff", "\u202e".encode()))
            return data + filler * MB + b"\n" + data
        if what == "mb-value":
            return self._json_line(data, lambda obj: _grow(obj, self.rng, "x" * MB)) if seed.family != "text" and \
                seed.family != "csv" else data.replace(b" ", b" " + b"q" * MB + b" ", 1)
        if what == "deep-line":
            return data + deep_json(DEEP, self.rng.choice(("array", "object", "mixed"))) + b"\n" + data
        if what == "deep-value":
            deep = orjson.loads(deep_json(min(DEEP, 250), "object"))  # orjson's own limit is 255 levels
            grown = self._json_line(data, lambda obj: _grow(obj, self.rng, deep))
            if grown == data:  # not JSON: splice the raw deep text in
                return data.replace(b"\n", b" " + deep_json(DEEP) + b"\n", 1)
            return grown.replace(b'{"a":1}', deep_json(DEEP, "object"), 1) if b'{"a":1}' in grown else grown
        raise ValueError(what)


BIG_KINDS = ("mb-line", "mb-value", "deep-line", "deep-value")


def _grow(obj: Any, rng: random.Random, value: Any) -> Any:
    paths = _paths(obj)
    if not paths:
        return value
    _set(obj, rng.choice(paths), value)
    return obj


# ---------------------------------------------------------------------------------------------- planting canaries


def plant(data: bytes, family: str, token: str, rng: random.Random) -> bytes | None:
    """`data` with `token` put into one field (JSON string value, CSV cell, text field), delimited so that it
    stays a token (spaces or the field's own bounds). None when there is no field to put it in."""
    def wrap() -> str:
        return rng.choice((token, f"{token}", f"x {token} y", f"Bearer {token}", f"/p?q=1&a={token}", f"{token} "))

    lines = data.split(b"\n")
    if family in ("jsonl", "json-doc"):
        def edit(obj: Any) -> Any:
            paths = string_paths(obj)
            if paths:
                _set(obj, rng.choice(paths), wrap())
            elif isinstance(obj, dict):
                obj["note"] = wrap()
            return obj
        try:
            doc = orjson.loads(data)
            pretty = b"\n  " in data
            return dumps(edit(doc), pretty) + b"\n"
        except orjson.JSONDecodeError:
            pass
        order = list(range(len(lines)))
        rng.shuffle(order)
        for i in order:
            try:
                obj = orjson.loads(lines[i])
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict | list):
                lines[i] = dumps(edit(obj))
                return b"\n".join(lines)
        return None
    order = [i for i in range(len(lines)) if lines[i].strip()]
    if not order:
        return None
    if family == "csv":
        i = rng.choice(order[1:] or order)
        try:
            row = next(csv.reader([lines[i].decode("utf-8", "replace")]), [])
        except csv.Error:
            return None
        if not row:
            return None
        row[rng.randrange(len(row))] = wrap()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        lines[i] = buf.getvalue().encode()
        return b"\n".join(lines)
    i = rng.choice(order)
    text = lines[i].decode("utf-8", "replace")
    spaces = [j for j, ch in enumerate(text) if ch == " "] or [len(text)]
    j = rng.choice(spaces)
    lines[i] = (text[:j] + " " + token + " " + text[j + 1:]).encode()
    return b"\n".join(lines)


# ---------------------------------------------------------------------------------------------- hypothesis


hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=20).map(lambda s: s + "\u202e\x1b[0m"),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    hostile_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(hostile_text, inner, max_size=4)),
                           max_leaves=12)


@cache
def _records_of(family: str) -> tuple[tuple[str, Any], ...]:
    """(format, decoded record) for every JSON record in the family's seeds (for structured generation)."""
    out: list[tuple[str, Any]] = []
    for s in seeds():
        if s.family not in ("jsonl", "json-doc") or (family == "jsonl") != (s.family == "jsonl"):
            continue
        if s.family == "jsonl":
            for ln in s.lines:
                try:
                    out.append((s.format, orjson.loads(ln)))
                except orjson.JSONDecodeError:
                    continue
        else:
            try:
                out.append((s.format, orjson.loads(s.data)))
            except orjson.JSONDecodeError:
                for rec in _pretty_objects(s.data):
                    out.append((s.format, rec))
    return tuple(out)


def _pretty_objects(data: bytes) -> list[Any]:
    dec = json.JSONDecoder()
    text, i = data.decode(), 0
    out: list[Any] = []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            return out
        out.append(obj)


@st.composite
def edited_record(draw: st.DrawFn, family: str) -> tuple[str, Any]:
    """A seed record with hypothesis-chosen values replaced, keys dropped or hostile keys added."""
    fmt, rec = draw(st.sampled_from(_records_of(family)))
    rec = json.loads(dumps(rec))  # a private copy
    paths = _paths(rec)
    for _ in range(draw(st.integers(0, 4))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        what = draw(st.sampled_from(("value", "drop", "key")))
        parent = _get(rec, path[:-1])
        if what == "value":
            parent[path[-1]] = draw(json_values)
        elif what == "drop" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, dict):
            parent[draw(hostile_text)] = draw(json_values)
        paths = _paths(rec)
    return fmt, rec


@st.composite
def jsonl_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    """JSON lines of one format: edited seed records, generated objects, blank and broken lines."""
    fmt = None
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(("record", "record", "record", "value", "blank", "cut")))
        if kind == "value":
            lines.append(dumps(draw(json_values)))
            continue
        if kind == "blank":
            lines.append(draw(st.sampled_from((b"", b"  ", b"\t", b"\xef\xbb\xbf"))))
            continue
        f, rec = draw(edited_record("jsonl"))
        fmt = fmt or f
        text = dumps(rec)
        if kind == "cut":
            text = text[: draw(st.integers(0, len(text)))]
        lines.append(text)
    if fmt is None:
        fmt = draw(st.sampled_from(_records_of("jsonl")))[0]
    return fmt, b"\n".join(lines) + draw(st.sampled_from((b"\n", b"", b"\r\n")))


@st.composite
def json_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """Whole documents: a seed document edited, or records wrapped as an array / `{"Records"|"value"|"records"|
    "items": […]}`, or pretty-printed back to back; sometimes cut short."""
    if draw(st.booleans()):
        fmt, doc = draw(edited_record("json-doc"))
        data = dumps(doc, draw(st.booleans()))
    else:
        fmt, _ = draw(st.sampled_from(_records_of("json-doc")))
        recs = [r for f, r in _records_of("jsonl") + _records_of("json-doc") if f == fmt and isinstance(r, dict)]
        items = draw(st.lists(st.one_of(st.sampled_from(recs) if recs else json_values, json_values), max_size=5))
        shape = draw(st.sampled_from(("array", "Records", "value", "records", "items", "pretty")))
        if shape == "array":
            data = dumps(items, draw(st.booleans()))
        elif shape == "pretty":
            data = b"\n".join(dumps(i, True) for i in items)
        else:
            data = dumps({shape: items, "nextLink": draw(hostile_text)}, True)
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return fmt, data + b"\n"


@cache
def _csv_headers() -> tuple[tuple[str, list[str]], ...]:
    out = []
    for s in seeds_of("csv"):
        header = next(csv.reader([s.data.decode("utf-8-sig").split("\n", 1)[0]]))
        out.append((s.format, header))
    return tuple(out)


csv_cells = st.one_of(st.sampled_from(FORMULA + ODD_TIMES + TRAVERSAL), hostile_text,
                      st.datetimes().map(lambda d: d.isoformat() + "Z"), st.integers().map(str),
                      st.just("2025-08-12T09:14:22.123Z"), st.text(alphabet='",\r\n ', max_size=6))


@st.composite
def csv_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed CSV's header (sometimes reordered or cut) and generated rows: formula injection, quotes, embedded
    newlines, wrong field counts."""
    fmt, header = draw(st.sampled_from(_csv_headers()))
    header = list(header)
    if draw(st.integers(0, 3)) == 0:
        header = draw(st.permutations(header))
    if draw(st.integers(0, 5)) == 0:
        header = header[: draw(st.integers(0, len(header)))]
    buf = io.StringIO()
    w = csv.writer(buf, quoting=draw(st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL))),
                   lineterminator=draw(st.sampled_from(("\n", "\r\n"))))
    w.writerow(header)
    for _ in range(draw(st.integers(0, 5))):
        n = len(header) + draw(st.sampled_from((0, 0, 0, -1, 1)))
        w.writerow([draw(csv_cells) for _ in range(max(0, n))])
    data = buf.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return fmt, data


_METHODS = ("GET", "POST", "PUT", "DELETE", "-", "", "GET\x1b[31m", "PROPFIND")
_ips = st.one_of(st.ip_addresses().map(str), st.sampled_from(("-", "", "::1", "999.1.1.1", "[::1]:80", "a b")))
_log_times = st.one_of(st.datetimes().map(lambda d: d.strftime("%d/%b/%Y:%H:%M:%S +0000")), st.sampled_from(ODD_TIMES))
_iso_times = st.one_of(st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
                       st.sampled_from(ODD_TIMES))
_kc_times = st.one_of(st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S,") + f"{d.microsecond // 1000:03d}"),
                      st.times().map(lambda t: t.strftime("%H:%M:%S,%f")[:-3]), st.sampled_from(ODD_TIMES))
_paths_text = st.one_of(st.sampled_from(("/", "/api/v1/x?a=1&b=2", "/a b", "*", "http://h/p")),
                        hostile_text.map(lambda s: "/" + s))


@st.composite
def text_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    """Combined access-log, Envoy text and Keycloak server-log lines built from parts, parts hostile."""
    fmt = draw(st.sampled_from(("nginx-combined", "envoy-access", "keycloak-events")))
    lines = []
    for _ in range(draw(st.integers(1, 5))):
        t = draw(hostile_text)
        if fmt == "nginx-combined":
            lines.append(f'{draw(_ips)} - {draw(st.sampled_from(("-", "alice", t)))} [{draw(_log_times)}] '
                         f'"{draw(st.sampled_from(_METHODS))} {draw(_paths_text)} HTTP/1.1" '
                         f'{draw(st.integers(-1, 1000))} {draw(st.sampled_from(("-", "0", "12", "1e3")))} '
                         f'"{draw(hostile_text)}" "{t}"')
        elif fmt == "envoy-access":
            lines.append(f'[{draw(_iso_times)}] "{draw(st.sampled_from(_METHODS))} {draw(_paths_text)} HTTP/1.1" '
                         f'{draw(st.integers(-1, 1000))} {draw(st.sampled_from(("-", "UH", "DC", t)))} 0 '
                         f'{draw(st.integers(0, 99))} {draw(st.integers(0, 99))} - "{draw(_ips)}" "{t}" '
                         f'"{draw(hostile_text)}" "{draw(hostile_text)}" "{draw(_ips)}"')
        else:
            kv = ", ".join(f"{k}={q}{draw(hostile_text)}{q}" for q in [draw(st.sampled_from(("", '"')))] for k in draw(st.lists(st.sampled_from(
                ("type", "realmId", "clientId", "userId", "ipAddress", "error", "operationType", "resourcePath",
                 "sessionId", "token_id", "refresh_token_id")), max_size=6)))
            lines.append(f"{draw(_kc_times)} "
                         f"{draw(st.sampled_from(('DEBUG', 'INFO', 'WARN', t)))} "
                         f"[{draw(st.sampled_from(('org.keycloak.events', 'org.keycloak.services', t)))}] "
                         f"(executor-thread-1) {draw(st.sampled_from(('', 'type=LOGIN, ', 'operationType=CREATE, ')))}"
                         f"{kv}")
    return fmt, "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"


STRATEGIES: dict[str, st.SearchStrategy[tuple[str, bytes]]] = {
    "jsonl": jsonl_docs(),
    "json-doc": json_documents(),
    "csv": csv_docs(),
    "text": text_docs(),
}
