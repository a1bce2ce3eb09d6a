"""Opening what a responder hands stanch: files, `.gz` files, directories and stdin, streamed."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

HEAD_LINES = 20


class UnreadableInput(OSError):
    """An input's bytes cannot be read as what they say they are (a corrupt or truncated `.gz`): the input's fault,
    not a parser's. The message names the file and the fix."""


_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


class _CheckedGzip(gzip.GzipFile):
    """A GzipFile whose decompression errors become `UnreadableInput` naming the file (logs copied mid-rotation
    end in a truncated gzip stream; a file may carry gzip's magic and not be gzip)."""

    def __init__(self, label: str, fileobj: IO[bytes]) -> None:
        super().__init__(fileobj=fileobj, mode="rb")
        self._label = label

    def _unreadable(self, e: Exception) -> UnreadableInput:
        what = "ends before its gzip stream does (truncated)" if isinstance(e, EOFError) else "is not valid gzip"
        return UnreadableInput(f"{self._label}: the file {what}: {str(e) or type(e).__name__}; re-fetch it, or "
                               f"ingest what can be read: `zcat {self._label} > {self._label.removesuffix('.gz')}.log`")

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except _GZIP_ERRORS as e:
            raise self._unreadable(e) from e

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except _GZIP_ERRORS as e:
            raise self._unreadable(e) from e

    def peek(self, n: int) -> bytes:
        try:
            return super().peek(n)
        except _GZIP_ERRORS as e:
            raise self._unreadable(e) from e

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except _GZIP_ERRORS as e:
            raise self._unreadable(e) from e


class FileSource:
    """One input file, read in constant memory. `.gz` is decompressed transparently (by magic, not by name)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self._stdin_spool: IO[bytes] | None = None

    def _open_raw(self) -> IO[bytes]:
        if self.path == "-":
            if self._stdin_spool is None:
                self._stdin_spool = _spool_stdin()
            return io.BufferedReader(_SpoolView(self._stdin_spool))
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it

    def binary(self) -> IO[bytes]:
        """The decompressed bytes."""
        raw = self._open_raw()
        magic = raw.peek(2)[:2]  # type: ignore[attr-defined]
        if magic == b"\x1f\x8b":
            return _CheckedGzip(self.name, raw)  # type: ignore[return-value]
        return raw

    def text(self) -> IO[str]:
        """Decompressed text; undecodable bytes are replaced, never fatal."""
        return io.TextIOWrapper(self.binary(), encoding="utf-8", errors="replace", newline=None)

    def lines(self) -> Iterator[tuple[int, str]]:
        """(1-based line number, line without its newline). Lines end at `\\n` (a trailing `\\r` is dropped);
        undecodable bytes are replaced, never fatal. Worker processes split files by the same rule."""
        with self.binary() as fh:
            for n, raw in enumerate(fh, 1):
                yield n, raw.decode("utf-8", "replace").rstrip("\r\n")

    def is_plain_file(self) -> bool:
        """A regular, uncompressed file: workers can read byte ranges of it themselves."""
        if self.path == "-":
            return False
        with open(self.path, "rb") as fh:
            return fh.read(2) != b"\x1f\x8b"

    def head(self, n: int = HEAD_LINES) -> list[str]:
        """The first `n` non-blank lines, for format detection."""
        out: list[str] = []
        for _, line in self.lines():
            if line.strip():
                out.append(line)
            if len(out) >= n:
                break
        return out

    def sha256(self) -> str:
        """SHA-256 of the file's bytes as stored (compressed bytes for a `.gz`)."""
        h = hashlib.sha256()
        with self._open_raw() as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def size(self) -> int:
        """Bytes on disk (or spooled from stdin)."""
        if self.path == "-":
            self._open_raw().close()
            assert self._stdin_spool is not None
            self._stdin_spool.seek(0, os.SEEK_END)
            return self._stdin_spool.tell()
        return os.path.getsize(self.path)


class BytesSource(FileSource):
    """A page of records fetched live, held in memory and read exactly like a file of the vendor's export.

    Its bytes never touch the disk: a pulled page is not yet redacted (the parsers redact it on the way in).
    """

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(name)
        self._data = data

    def _open_raw(self) -> IO[bytes]:
        return io.BufferedReader(io.BytesIO(self._data))

    def is_plain_file(self) -> bool:
        return False

    def size(self) -> int:
        return len(self._data)


def _spool_stdin() -> IO[bytes]:
    import tempfile

    # stdin is read once into memory (spilling to a private temp file past 64 MiB) so that
    # sniffing, hashing and parsing can each read it from the start.
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115
    src = sys.stdin.buffer
    for chunk in iter(lambda: src.read(1 << 20), b""):
        spool.write(chunk)
    return spool


class _SpoolView(io.RawIOBase):
    """An independent reader over the stdin spool; closing it leaves the spool open."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        self._spool.seek(self._pos)
        data = self._spool.read(len(b))
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def expand(paths: list[str]) -> list[FileSource]:
    """Files named, with directories walked (sorted, hidden files skipped); `-` is stdin."""
    out: list[FileSource] = []
    for p in paths:
        if p == "-":
            out.append(FileSource("-"))
            continue
        path = Path(p)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    out.append(FileSource(str(child)))
        elif path.is_file():
            out.append(FileSource(str(path)))
        else:
            raise FileNotFoundError(f"{p}: no such file or directory; check the path")
    return out
