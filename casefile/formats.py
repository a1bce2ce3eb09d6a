"""The parser registry: format name → parser. Vendor modules in `connectors/` register here.

The case file knows no vendor: it only knows that a format has a name, a sniff function
that scores the first lines of a file, and a parse function that streams `Parsed` events and
`Problem`s from a `SourceStream`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from casefile.records import Parsed, Problem


class SourceStream(Protocol):
    """A file (or stdin) being ingested. Parsers read it once, either as numbered lines or as bytes."""

    name: str

    def lines(self) -> Iterator[tuple[int, str]]:
        """(1-based line number, line without its newline)."""
        ...

    def binary(self) -> IO[bytes]:
        """The decompressed byte stream, for streaming parsers (JSON arrays)."""
        ...


ParseFn = Callable[[SourceStream], Iterator[Parsed | Problem]]
SniffFn = Callable[[list[str]], float]


@dataclass(frozen=True, slots=True)
class Format:
    """A registered log format."""

    name: str
    vendor: str
    description: str
    parse: ParseFn
    sniff: SniffFn
    version: str = "1"
    # Given the first lines, True when any run of whole lines parses on its own (JSON lines, access logs):
    # then ingest may parse chunks of the file in worker processes. None: always one stream.
    splittable: Callable[[list[str]], bool] | None = None


_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Register a format; a second registration of the same name replaces the first (reloads in tests)."""
    _REGISTRY[fmt.name] = fmt
    return fmt


def get(name: str) -> Format | None:
    """The format called `name`, or None."""
    return _REGISTRY.get(name)


def all_formats() -> list[Format]:
    """Every registered format, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


class DetectionError(ValueError):
    """No format, or more than one, fits a file's first lines."""


def json_lines(head: list[str]) -> bool:
    """`splittable` for JSON-lines formats: the first record is one complete object on one line."""
    first = head[0].strip() if head else ""
    return first.startswith("{") and first.endswith("}")


def chunk_of_lines(src: SourceStream) -> bool:
    """True for a run of lines cut from a file that its format's `splittable` judged to hold one record per line
    (a chunk of a parallel ingest). Its first line says nothing about the file's layout: a parser that looks at
    it (`[` → a JSON array, a broken `{` → a pretty-printed document) must read such a source line by line."""
    return getattr(src, "chunk_of_lines", False) is True


def always(head: list[str]) -> bool:
    """`splittable` for formats where every line stands alone (access logs)."""
    return True


def detect(head: list[str], source_name: str) -> Format:
    """The one format whose sniff scores the first lines highest (>= 0.5), or a DetectionError naming the candidates."""
    scored = sorted(((f.sniff(head), f) for f in _REGISTRY.values()), key=lambda t: -t[0])
    hits = [(s, f) for s, f in scored if s >= 0.5]
    if not hits:
        names = ", ".join(f.name for f in all_formats())
        raise DetectionError(
            f"{source_name}: line 1: no known log format fits; pass --format NAME (one of: {names})"
        )
    if len(hits) > 1 and hits[0][0] == hits[1][0]:
        tied = ", ".join(f.name for s, f in hits if s == hits[0][0])
        raise DetectionError(f"{source_name}: line 1: could be any of {tied}; pass --format NAME to choose")
    return hits[0][1]
