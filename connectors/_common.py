"""Helpers shared by the vendor parsers in `connectors/` (no formats are registered here).

Only code whose behaviour is the same in every parser that uses it lives here: value coercions, the
nested lookups (exact, and case-insensitive for exports that lowercase keys), and the stream plumbing (finding a file's shape from its first bytes, putting
those bytes back, streaming a top-level JSON array with ijson, numbering JSON lines). Each parser keeps its own
Problem reason texts, passed in as arguments, so what a parser yields does not depend on this module.

This module may import only `casefile.*`, the standard library, orjson and ijson.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeAlias

import ijson
import orjson

from casefile.records import Parsed, Problem
from casefile.timeutil import TimeError, to_utc_iso

UTF8_BOM = b"\xef\xbb\xbf"

# What a parser's per-record function may give back: one result, or any number of them.
ParseResult: TypeAlias = Parsed | Problem | Iterable[Parsed | Problem]
_ONE_RESULT = (Parsed, Problem)

# ---------------------------------------------------------------------------------------------- values


def text_reader(missing: Iterable[str | None] = (), *, fold_case: bool = False) -> Callable[[Any], str | None]:
    """A function turning a JSON value into a usable string: stripped text, or None for an absent value.

    The function returns None for None, booleans, objects and arrays, for empty or blank text, and for any text
    in `missing` (compared after lower-casing when `fold_case`; `missing` must then hold lower-case texts).
    Numbers become their `str()`. Each parser passes its own placeholders (`null`, `unknown`, `-`…).
    """
    absent = frozenset(m for m in missing if m is not None) | {""}
    if fold_case:

        def read_folded(value: Any) -> str | None:
            if value is None or isinstance(value, bool | dict | list):
                return None
            text = str(value).strip()
            return None if text.lower() in absent else text

        return read_folded

    def read(value: Any) -> str | None:
        if value is None or isinstance(value, bool | dict | list):
            return None
        text = str(value).strip()
        return None if text in absent else text

    return read


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty dict (so that `.get` chains never fail)."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float (`200.0`) or a string of digits; None for anything else.

    Booleans are not integers here, and a string with a sign or a fraction is not read.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def dash_none(value: Any) -> Any:
    """None for the empty values access logs write (None, `""`, `-`); any other value unchanged."""
    return None if value is None or value == "" or value == "-" else value


def utc_time_or_none(value: Any) -> str | None:
    """`casefile.timeutil.to_utc_iso` of the value, or None when it is absent, a boolean or not a readable time."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return to_utc_iso(value)
    except (TimeError, ValueError, OverflowError, OSError, TypeError):
        return None


def host_without_port(addr: str) -> str:
    """`1.2.3.4:5678` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1`; a bare address is kept."""
    if addr.startswith("["):
        return addr[1:].partition("]")[0]
    if addr.count(":") == 1:
        return addr.partition(":")[0]
    return addr


def http_outcome(status: int | None) -> str:
    """An HTTP status as an outcome: 2xx/3xx `success`, 4xx/5xx `failure`, anything else (none, 1xx, 0) `unknown`."""
    if status is None or not 200 <= status <= 599:
        return "unknown"
    return "success" if status < 400 else "failure"


def get_path(obj: Any, *path: str) -> Any:
    """obj[path...] with each key matched exactly, else case-insensitively; None when absent or not a dict.

    For exports that lowercase some keys (Panther's). A parser that knows a record has canonical keys uses
    `get_path_exact` for it instead, so that an absent optional field does not cost a scan of every key.
    """
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        if key in cur:
            cur = cur[key]
            continue
        low = key.lower()
        for k, v in cur.items():
            if isinstance(k, str) and k.lower() == low:
                cur = v
                break
        else:
            return None
    return cur


def get_path_exact(obj: Any, *path: str) -> Any:
    """obj[path...] with each key matched exactly; None when absent or not a dict."""
    cur = obj
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


# ---------------------------------------------------------------------------------------------- byte streams


class PrefixedStream(io.RawIOBase):
    """A byte stream with the bytes already read (to find the shape) put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            data, self._head = self._head[: len(b)], self._head[len(b) :]
        else:
            data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def first_nonblank_byte(fh: IO[bytes]) -> tuple[bytes, bytes]:
    """(bytes read so far without a UTF-8 BOM, first non-blank byte or b'' at EOF).

    Give the bytes back with `PrefixedStream(head, fh)` to read the whole file.
    """
    buf = b""
    while True:
        chunk = fh.read(4096)
        if not chunk:
            return buf, b""
        buf += chunk
        if buf.startswith(UTF8_BOM):
            buf = buf[3:]
        stripped = buf.lstrip()
        if stripped:
            return buf, stripped[:1]


def first_nonblank_line(lines: Iterator[tuple[int, str]]) -> tuple[list[int], tuple[int, str] | None]:
    """(numbers of the blank lines read, the first non-blank line as (number, text), or None at the end).

    A line of blanks and UTF-8 BOMs is blank. The lines after the one returned are left unread.
    """
    blanks: list[int] = []
    for n, text in lines:
        if text.lstrip("\ufeff").strip():
            return blanks, (n, text)
        blanks.append(n)
    return blanks, None


class LineStream(io.RawIOBase):
    """Bytes of a run of text lines (already read lines first), for ijson; lines are read once."""

    def __init__(self, first: list[str], rest: Iterator[tuple[int, str]]) -> None:
        super().__init__()
        self._buf = "".join(line + "\n" for line in first).encode("utf-8")
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            nxt = next(self._rest, None)
            if nxt is None:
                return 0
            self._buf = (nxt[1] + "\n").encode("utf-8")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class JsonDepthScanner:
    """Brace depth of a JSON text fed piece by piece (strings and escapes respected)."""

    __slots__ = ("depth", "in_str", "esc")

    def __init__(self) -> None:
        self.depth = 0
        self.in_str = False
        self.esc = False

    def feed(self, text: str) -> int:
        """Index just past the character that closes the top-level value, or -1 when it is still open."""
        depth, in_str, esc = self.depth, self.in_str, self.esc
        for i, ch in enumerate(text):
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth <= 0:
                    self.depth, self.in_str, self.esc = 0, False, False
                    return i + 1
        self.depth, self.in_str, self.esc = depth, in_str, esc
        return -1


# ---------------------------------------------------------------------------------------------- JSON records


def json_line_share(lines: list[str], looks: Callable[[Any], bool]) -> float:
    """The share of `lines` (a sniffer's non-blank head lines, at least one) that are JSON values `looks` accepts.

    A line that is not JSON counts as a miss.
    """
    hits = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if looks(obj):
            hits += 1
    return hits / len(lines)


# What ijson raises on a truncated or broken document (and on bytes that are not UTF-8).
JSON_STREAM_ERRORS = (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError)


def stream_error_reason(e: BaseException) -> str:
    """The first line of a streaming error's message, or the error's type name when the message is empty."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# parsers re-encode records for their stable ids with orjson, which writes 255 levels of nesting but reads 1024
# (and ijson reads any number): a record nested deeper is reported, not raised.
_TOO_DEEP = "record nested too deeply to re-encode ({error})"


def too_deep(line: int, e: BaseException) -> Problem:
    """The Problem for a record orjson cannot re-encode (nested past its 255 write levels)."""
    return Problem(line, "malformed", _TOO_DEEP.format(error=e))


def unreadable(what: str, e: BaseException) -> str:
    """The reason for a record a parser could not read (its own defence in depth caught `e`): what the record was,
    and what was wrong with it, in one line."""
    if isinstance(e, orjson.JSONEncodeError):  # orjson writes 255 levels of nesting (stable ids re-encode records)
        return f"{what} nested too deeply to re-encode ({e}); no vendor writes JSON that deep"
    detail = stream_error_reason(e)[:120]
    return f"unreadable {what}: a field of an unexpected type or value ({type(e).__name__}: {detail})"


def _results(parse: Callable[[Any, int], ParseResult], obj: Any, n: int) -> Iterator[Parsed | Problem]:
    try:
        result = parse(obj, n)
        if isinstance(result, _ONE_RESULT):
            yield result
        else:
            yield from result
    except orjson.JSONEncodeError as e:
        yield too_deep(n, e)


def stream_json_items(
    items: Iterable[Any],
    parse_item: Callable[[Any, int], ParseResult],
    broken: str,
    *,
    non_object: str | None = None,
) -> Iterator[Parsed | Problem]:
    """Results of `parse_item(item, index)` for each item of a streamed JSON document, numbered 1, 2, ….

    `items` is an ijson iterator (`ijson.items(stream, "item")`…). With `non_object` (a label such as
    `array item`), an item that is not a JSON object becomes the Problem `<non_object> <index> is not a JSON
    object` instead of being parsed. A truncated or broken document yields everything before the break and one
    `malformed` Problem at the next index whose reason is `broken` formatted with `index` (the items read) and
    `reason` (the parser's message, at most 200 characters).
    """
    index = 0
    try:
        for item in items:
            index += 1
            if non_object is not None and not isinstance(item, dict):
                yield Problem(index, "malformed", f"{non_object} {index} is not a JSON object")
                continue
            yield from _results(parse_item, item, index)
    except JSON_STREAM_ERRORS as e:
        yield Problem(index + 1, "malformed", broken.format(index=index, reason=stream_error_reason(e)[:200]))


def parse_json_lines(
    lines: Iterable[tuple[int, str]],
    parse_value: Callable[[Any, int], ParseResult],
    *,
    non_object: str | None = None,
) -> Iterator[Parsed | Problem]:
    """Results of `parse_value(value, line)` for each JSON line, keeping the source's own line numbers.

    A blank line is `skipped` ("blank line"); a line that is not JSON is `malformed` ("not JSON: <error>").
    With `non_object` (a template that may use `{type}`, the JSON type's Python name), a value that is not a
    JSON object becomes a `malformed` Problem with that reason instead of being parsed.
    """
    for n, text in lines:
        if not text.strip():
            yield Problem(n, "skipped", "blank line")
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            yield Problem(n, "malformed", f"not JSON: {e}")
            continue
        if non_object is not None and not isinstance(obj, dict):
            yield Problem(n, "malformed", non_object.format(type=type(obj).__name__))
            continue
        yield from _results(parse_value, obj, n)
