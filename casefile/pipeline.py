"""Parse and prepare in worker processes, write in one: ingest uses both cores.

A file is cut into chunks of lines. A worker parses a chunk with the file's format, prepares each event
(`casefile.prepare`: times, redaction, keys, hashes) and writes the chunk into a private staging SQLite
file. The single writer (`casefile.ingest`) attaches that file and moves its rows into the case with one
`INSERT … SELECT`: the per-row work of the writer happens in SQLite's C code, not in Python. What only
the writer can know — credential ids, occurrence numbers of events without a vendor id — it decides
from the chunk's few distinct keys and joins in.

Chunks arrive in file order with a bounded number in flight, so memory stays flat however large the
file. Formats that need the whole stream (a JSON array, pretty-printed records) and small files are
parsed in this process, through the same staging files.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sqlite3
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from casefile import formats
from casefile.audit import EVENT_CONTENT
from casefile.geoip import for_paths
from casefile.prepare import (
    P_COLUMNS,
    P_CONTENT_HASH,
    P_CRED_FACTS,
    P_CRED_KEYS,
    P_DIGEST,
    P_EXPOSED,
    P_ID,
    P_LINE,
    P_OBJECTS,
    P_PATTERN,
    P_ROW_HASH,
    P_SUBJ_FACTS,
    P_SUBJ_KEYS,
    prepare,
)
from casefile.records import Problem
from casefile.redact import needs_redaction, redact
from casefile.sources import FileSource, UnreadableInput

# Lines per chunk, and so events per transaction and audit entry (STANCH_INGEST_BATCH overrides it).
CHUNK_LINES = int(os.environ.get("STANCH_INGEST_BATCH", "8000"))
PARALLEL_MIN_BYTES = 4 << 20  # below this, starting workers costs more than it saves
RANGE_BYTES_PER_LINE = 512  # a plain file is cut by bytes: CHUNK_LINES x this, at a line end

# The staging table: the event columns in CONTENT order, then what the writer finishes.
STAGED_COLUMNS = (*EVENT_CONTENT, "id", "digest", "row_hash", "content_hash", "pattern", "objects")
_STAGE_INSERT = f"INSERT INTO e({', '.join(STAGED_COLUMNS)}) VALUES ({','.join('?' * len(STAGED_COLUMNS))})"


@dataclass(slots=True)
class Chunk:
    """A staged chunk: its file, counts, problems, the credentials it names, and a parser error if any."""

    path: str
    events: int = 0
    problems: list[list[Any]] = field(default_factory=list)  # [line, kind, reason]
    # joined keys -> [facts (REF_FACTS order), first ts, last ts]
    refs: dict[str, list[Any]] = field(default_factory=dict)
    error: str | None = None
    exposed: int = 0  # credentials found in the chunk's records (staged in table `x`)

    def __len__(self) -> int:
        return self.events + len(self.problems)


class ParserFailed(Exception):
    """A parser raised (a bug): the items before the failure were delivered."""


class ChunkSource:
    """A run of lines of a file, as a SourceStream: line numbers stay those of the file. Parsers read it as lines
    (`casefile.formats.chunk_of_lines`): a chunk may start with a broken line that looks like another layout."""

    chunk_of_lines = True

    def __init__(self, name: str, first_line: int, lines: list[str]) -> None:
        self.name = name
        self.first_line = first_line
        self._lines = lines

    def lines(self) -> Iterator[tuple[int, str]]:
        for i, line in enumerate(self._lines):
            yield self.first_line + i, line

    def binary(self) -> IO[bytes]:
        return io.BytesIO("\n".join(self._lines).encode())


def stored_reason(reason: str) -> str:
    """A Problem's reason as the case keeps it: redacted like a raw record, since reasons quote field values
    ("unreadable time '…'") and fields are written by whoever held the token."""
    return reason if not needs_redaction(reason) else str(redact(reason)[0])


class _Stager:
    """Collects prepared events of one chunk and writes them to its staging file."""

    def __init__(self, path: str, fmt_name: str, source_id: int | None, geoip: tuple[str, ...] = ()) -> None:
        self.chunk = Chunk(path)
        self.fmt_name = fmt_name
        self.source_id = source_id
        self.geo = for_paths(geoip)
        self.rows: list[tuple[Any, ...]] = []
        self.exposed: list[tuple[Any, ...]] = []  # (stage rowid of the event, keys, field, shape, preview)

    def add(self, item: Any) -> None:
        out = item if isinstance(item, Problem) else prepare(item, self.fmt_name, self.source_id, self.geo)
        if isinstance(out, Problem):
            self.chunk.problems.append([out.line, out.kind, stored_reason(out.reason)])
            return
        ts = out[P_COLUMNS]
        for keys, facts in ((out[P_CRED_KEYS], out[P_CRED_FACTS]), (out[P_SUBJ_KEYS], out[P_SUBJ_FACTS])):
            if keys:
                ref = self.chunk.refs.get(keys)
                if ref is None:
                    self.chunk.refs[keys] = [facts, ts, ts]
                elif ts < ref[1]:
                    ref[1] = ts
                elif ts > ref[2]:
                    ref[2] = ts
        self.rows.append((*out[P_COLUMNS:], out[P_LINE], out[P_ID], out[P_DIGEST], out[P_ROW_HASH],
                          out[P_CONTENT_HASH], out[P_PATTERN], out[P_OBJECTS]))
        for keys, facts, fld, shape, preview in out[P_EXPOSED]:
            if keys not in self.chunk.refs:
                self.chunk.refs[keys] = [facts, ts, ts]
            self.exposed.append((len(self.rows), keys, fld, shape or None, preview or None))

    def __len__(self) -> int:
        return len(self.rows) + len(self.chunk.problems)

    def write(self) -> Chunk:
        conn = sqlite3.connect(self.chunk.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute(f"CREATE TABLE e({', '.join(STAGED_COLUMNS)})")
            conn.execute("CREATE TABLE x(erow INTEGER, keys TEXT, field TEXT, shape TEXT, preview TEXT)")
            conn.execute("BEGIN")
            conn.executemany(_STAGE_INSERT, self.rows)
            conn.executemany("INSERT INTO x VALUES (?, ?, ?, ?, ?)", self.exposed)
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.chunk.events = len(self.rows)
        self.chunk.exposed = len(self.exposed)
        self.rows = []
        self.exposed = []
        return self.chunk


def _read_range(file: str, offset: int, length: int) -> list[str]:
    """The lines of a byte range that starts and ends at line boundaries (the rule of FileSource.lines)."""
    with open(file, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _work(args: tuple[str, str, int | None, int, list[str] | tuple[str, int, int], str, tuple[str, ...]]) -> bytes:
    fmt_name, name, source_id, first, lines, path, geoip = args
    fmt = formats.get(fmt_name)
    assert fmt is not None
    if isinstance(lines, tuple | list) and len(lines) == 3 and isinstance(lines[1], int):
        lines = _read_range(*lines)
    stager = _Stager(path, fmt_name, source_id, geoip)
    error = None
    try:
        for item in fmt.parse(ChunkSource(name, first, lines)):
            stager.add(item)
    except Exception as e:  # a parser bug: keep what came before it
        error = repr(e)
    chunk = stager.write()
    chunk.error = error
    return orjson.dumps([chunk.path, chunk.events, chunk.problems, chunk.refs, chunk.error, chunk.exposed])


def _ranges(path: str, size: int) -> Iterator[tuple[int, tuple[str, int, int]]]:
    """(first line number, (path, offset, length)) for runs of about `size` bytes ending at a newline.
    Only newlines are counted here; the workers read and decode their own ranges."""
    line, offset = 1, 0
    with open(path, "rb") as fh:
        while True:
            fh.seek(offset)
            block = fh.read(size)
            if not block:
                return
            end = block.rfind(b"\n")
            while end < 0:  # a line longer than the block: read on to its end
                more = fh.read(size)
                if not more:
                    end = len(block) - 1
                    break
                found = more.find(b"\n")
                block += more if found < 0 else more[: found + 1]
                end = block.rfind(b"\n") if found >= 0 else -1
            length = end + 1
            yield line, (path, offset, length)
            line += block.count(b"\n", 0, length)
            if block.rfind(b"\n", 0, length) != length - 1:
                line += 1  # the last line had no newline
            offset += length


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


def staged_chunks(fmt: formats.Format, src: FileSource, staging_dir: str, workers: int = 0,
                  source_id: int | None = None, geoip: tuple[str, ...] = ()) -> Iterator[Chunk]:
    """Staged chunks in file order; the caller attaches, moves and deletes each. After a chunk whose parser
    failed, raises ParserFailed."""
    counter = iter(range(1 << 62))

    def next_path() -> str:
        return os.path.join(staging_dir, f"chunk-{next(counter)}.db")

    size = CHUNK_LINES
    if workers <= 0:
        stager = _Stager(next_path(), fmt.name, source_id, geoip)
        try:
            for item in fmt.parse(src):
                stager.add(item)
                if len(stager) >= size:
                    yield stager.write()
                    stager = _Stager(next_path(), fmt.name, source_id, geoip)
        except Exception as e:
            chunk = stager.write()
            chunk.error = repr(e)
            yield chunk
            if isinstance(e, UnreadableInput):  # the input's fault, not the parser's: the caller says so
                raise
            raise ParserFailed(repr(e)) from e
        if len(stager):
            yield stager.write()
        return
    # fork: workers inherit the format registry (the vendor modules registered in this process).
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending: deque[Any] = deque()

        def take() -> Chunk:
            path, events, problems, refs, error, exposed = orjson.loads(pending.popleft().get())
            return Chunk(path, events, problems, refs, error, exposed)

        work: Iterator[tuple[int, Any]] = (_ranges(src.path, size * RANGE_BYTES_PER_LINE) if src.is_plain_file()
                                           else _chunks(src, size))
        unreadable: UnreadableInput | None = None
        try:
            for first, lines in work:
                pending.append(pool.apply_async(_work, ((fmt.name, src.name, source_id, first, lines, next_path(),
                                                         geoip),)))
                if len(pending) >= workers * 2:
                    chunk = take()
                    yield chunk
                    if chunk.error:
                        raise ParserFailed(chunk.error)
        except UnreadableInput as e:  # the file stops being readable: store the chunks read before it first
            unreadable = e
        while pending:
            chunk = take()
            yield chunk
            if chunk.error:
                raise ParserFailed(chunk.error)
        if unreadable is not None:
            raise unreadable
