"""Parse and prepare in worker processes, write in one: ingest uses both cores.

A line-oriented file is cut into chunks of lines; each worker parses a chunk with the file's format
and prepares its events (`casefile.prepare`). A chunk comes back as one orjson document (prepared
events, problems, and a parser error if one happened) — far cheaper to move between processes than
pickled objects. Results arrive in file order, with a bounded number of chunks in flight, so memory
stays flat however large the file. Formats that need the whole stream (a JSON array, pretty-printed
multi-line records) are parsed in this process.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

import orjson

from casefile import formats
from casefile.prepare import prepare
from casefile.records import Problem
from casefile.sources import FileSource

CHUNK_LINES = 4000
PARALLEL_MIN_BYTES = 4 << 20  # below this, starting workers costs more than it saves


class Chunk:
    """Prepared events (lists, see casefile.prepare) and problems ([line, kind, reason]) of a run of lines."""

    __slots__ = ("events", "problems", "error")

    def __init__(self, events: list[list[Any]], problems: list[list[Any]], error: str | None) -> None:
        self.events = events
        self.problems = problems
        self.error = error

    def __len__(self) -> int:
        return len(self.events) + len(self.problems)


class ParserFailed(Exception):
    """A parser raised (a bug): the items before the failure were delivered."""


class ChunkSource:
    """A run of lines of a file, as a SourceStream: line numbers stay those of the file."""

    def __init__(self, name: str, first_line: int, lines: list[str]) -> None:
        self.name = name
        self.first_line = first_line
        self._lines = lines

    def lines(self) -> Iterator[tuple[int, str]]:
        for i, line in enumerate(self._lines):
            yield self.first_line + i, line

    def binary(self) -> IO[bytes]:
        return io.BytesIO("\n".join(self._lines).encode())


def _prepare_into(chunk: Chunk, item: Any, fmt_name: str, source_id: int | None) -> None:
    out = item if isinstance(item, Problem) else prepare(item, fmt_name, source_id)
    if isinstance(out, Problem):
        chunk.problems.append([out.line, out.kind, out.reason])
    else:
        chunk.events.append(out)


def _work(args: tuple[str, str, int | None, int, list[str]]) -> bytes:
    fmt_name, name, source_id, first, lines = args
    fmt = formats.get(fmt_name)
    assert fmt is not None
    chunk = Chunk([], [], None)
    try:
        for item in fmt.parse(ChunkSource(name, first, lines)):
            _prepare_into(chunk, item, fmt_name, source_id)
    except Exception as e:  # a parser bug: keep what came before it
        chunk.error = repr(e)
    return orjson.dumps([chunk.events, chunk.problems, chunk.error])


def _chunks(src: FileSource, size: int) -> Iterator[tuple[int, list[str]]]:
    first = 1
    buf: list[str] = []
    for n, line in src.lines():
        if not buf:
            first = n
        buf.append(line)
        if len(buf) >= size:
            yield first, buf
            buf = []
    if buf:
        yield first, buf


def workers_for(fmt: formats.Format, src: FileSource, head: list[str]) -> int:
    """How many worker processes this file gets (0: parse here)."""
    if fmt.splittable is None or not fmt.splittable(head) or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    try:
        if src.size() < PARALLEL_MIN_BYTES:
            return 0
    except OSError:
        return 0
    return max(1, min(4, os.cpu_count() or 1))


def prepared_chunks(fmt: formats.Format, src: FileSource, workers: int = 0,
                    source_id: int | None = None) -> Iterator[Chunk]:
    """Chunks in file order. After a chunk whose parser failed, raises ParserFailed."""
    if workers <= 0:
        chunk = Chunk([], [], None)
        try:
            for item in fmt.parse(src):
                _prepare_into(chunk, item, fmt.name, source_id)
                if len(chunk) >= CHUNK_LINES:
                    yield chunk
                    chunk = Chunk([], [], None)
        except Exception as e:
            yield chunk
            raise ParserFailed(repr(e)) from e
        if len(chunk):
            yield chunk
        return
    # fork: workers inherit the format registry (the vendor modules registered in this process).
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending: deque[Any] = deque()

        def take() -> Chunk:
            events, problems, error = orjson.loads(pending.popleft().get())
            return Chunk(events, problems, error)

        for first, lines in _chunks(src, CHUNK_LINES):
            pending.append(pool.apply_async(_work, ((fmt.name, src.name, source_id, first, lines),)))
            if len(pending) >= workers * 3:
                chunk = take()
                yield chunk
                if chunk.error:
                    raise ParserFailed(chunk.error)
        while pending:
            chunk = take()
            yield chunk
            if chunk.error:
                raise ParserFailed(chunk.error)
