"""Case bundles: one zip a responder hands over — a consistent copy of the case, the exports, and a manifest.

`make_bundle` copies the case with SQLite's backup API (consistent even while another process writes it; never a
file copy of a live WAL database), seals the copy with one audit entry (`bundle.seal`: what the bundle holds, when,
and by which stanch — chained to the case's head at bundling time), and writes a zip atomically:

    case.stanch       the sealed copy (a single file, rollback journal)
    exports/NAME      each export passed in (the timeline JSONL, the report, …)
    manifest.json     every other file's SHA-256 and size, the schema version, the copy's audit chain head and
                      entry count, the case's head before the seal, the stanch version, the time of bundling

`verify_bundle` trusts nothing in the zip: it refuses a zip with an absolute, `..`, backslash, duplicate, link or
directory entry before reading any content; then checks that the manifest is exactly what stanch writes, that the
zip holds exactly the files it lists (none missing, none extra), each with its size and SHA-256; then extracts the
case copy to a private temporary folder and runs `audit.verify` on it: the chain must be intact, its head and
entry count must be the manifest's, and its last entry must be the seal naming exactly the manifest's files and
fields. So every field of the manifest is checked against the files or the audited copy. What no bundle can prove
by itself is that nobody rebuilt the whole bundle with a rewritten chain: compare the head it prints with one
recorded outside the case (`expected_head`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from casefile import audit
from casefile.case import APP_NAME, APP_VERSION, Case, CaseError, open_case
from casefile.schema import SCHEMA_VERSION, migrate
from casefile.timeutil import now_iso

FORMAT = "stanch-bundle"
VERSION = 1
CASE_FILE = "case.stanch"
MANIFEST = "manifest.json"
EXPORTS_DIR = "exports/"
SEAL = "bundle.seal"
#: An export's name inside `exports/`: a plain file name.
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST = 16 << 20
_CHUNK = 1 << 20
_MANIFEST_KEYS = {"format", "version", "created_at", "stanch_version", "case", "files"}
_CASE_KEYS = {"file", "title", "schema_version", "audit_head", "audit_entries", "source_head", "source_entries"}
_FILE_KEYS = {"path", "sha256", "size"}


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The one spelling of a manifest stanch writes (and `verify_bundle` demands)."""
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


# -- making ---------------------------------------------------------------------------------------

def make_bundle(case: Case | str | os.PathLike[str], out_zip: str | os.PathLike[str],
                exports: Mapping[str, bytes | str | os.PathLike[str]] | None = None,
                analyst: str | None = None) -> dict[str, Any]:
    """Write the bundle to `out_zip` (atomically, mode 0600) and return its manifest.

    `case`: an open Case or a case path (opened, and upgraded, as every command does). `exports`: file name inside
    `exports/` → its bytes or the path of a file holding it.
    """
    exports = dict(exports or {})
    for name in exports:
        if not _EXPORT_NAME.match(name) or ".." in name:
            raise CaseError(f"bundle export {name!r}: not a plain file name (letters, digits, '.', '_', '-')")
    out = Path(out_zip)
    if not out.parent.is_dir():
        raise CaseError(f"{out}: directory {out.parent} does not exist; create it first")
    if isinstance(case, Case):
        return _make(case, out, exports, analyst)
    with open_case(case, analyst=analyst) as opened:
        return _make(opened, out, exports, analyst)


#: What `stanch export CASE --format bundle` puts in `exports/`: export format -> file name in the bundle.
BUNDLE_EXPORTS = {"timesketch-jsonl": "timeline.jsonl", "markdown": "report.md", "html": "report.html",
                  "opengraph": "graph.opengraph.json", "revocation-set": "revocation-set.json"}


def export_bundle(case: Case, out: str | os.PathLike[str],
                  formats: Mapping[str, str] | None = None) -> int:
    """`stanch export CASE --format bundle -o OUT.zip`: write each export of `formats` (format -> file name; default
    BUNDLE_EXPORTS) with `casefile.export.export` into a private folder, bundle them with the case, and return how
    many files the bundle holds besides its manifest."""
    from casefile.export import export

    target = Path(out)
    if not target.parent.is_dir():
        raise CaseError(f"{target}: directory {target.parent} does not exist; create it first")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.exports.", dir=target.parent))
    try:
        files: dict[str, bytes | str | os.PathLike[str]] = {}
        for fmt, name in (formats or BUNDLE_EXPORTS).items():
            export(case, fmt, work / name)
            files[name] = work / name
        manifest = make_bundle(case, target, files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(manifest["files"])


def _make(case: Case, out: Path, exports: dict[str, bytes | str | os.PathLike[str]],
          analyst: str | None) -> dict[str, Any]:
    created = now_iso()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # beside the zip: room for a large case
    try:
        os.chmod(work, 0o700)
        copy = work / CASE_FILE
        export_files: list[dict[str, Any]] = []
        for name, value in sorted(exports.items()):
            digest, size = _hash_export(value)
            export_files.append({"path": EXPORTS_DIR + name, "sha256": digest, "size": size})
        source_head, source_entries, copy_head, copy_entries, title, version = _sealed_copy(
            case, copy, {"created_at": created, "stanch_version": APP_VERSION, "files": export_files},
            analyst or case.analyst)
        case_digest, case_size = _hash_file(copy)
        manifest = {
            "format": FORMAT, "version": VERSION, "created_at": created, "stanch_version": APP_VERSION,
            "case": {"file": CASE_FILE, "title": title, "schema_version": version, "audit_head": copy_head,
                     "audit_entries": copy_entries, "source_head": source_head, "source_entries": source_entries},
            "files": [{"path": CASE_FILE, "sha256": case_digest, "size": case_size}, *export_files],
        }
        with _atomic_zip(out) as zf:
            _add_file(zf, CASE_FILE, copy)
            for name, value in sorted(exports.items()):
                if isinstance(value, bytes):
                    _add_bytes(zf, EXPORTS_DIR + name, value)
                else:
                    _add_file(zf, EXPORTS_DIR + name, Path(value))
            _add_bytes(zf, MANIFEST, _manifest_bytes(manifest))
        # An export file changed while it was being zipped would make a bundle that fails its own check.
        for f in export_files:
            name = f["path"][len(EXPORTS_DIR):]
            if _hash_export(exports[name]) != (f["sha256"], f["size"]):
                out.unlink()
                raise CaseError(f"bundle export {name}: changed while the bundle was written; bundle again")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _hash_export(value: bytes | str | os.PathLike[str]) -> tuple[str, int]:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest(), len(value)
    p = Path(value)
    if not p.is_file():
        raise CaseError(f"bundle export {p}: no such file; write the export first")
    return _hash_file(p)


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _sealed_copy(case: Case, copy: Path, seal: dict[str, Any],
                 who: str) -> tuple[str, int, str, int, str | None, int]:
    """Back the case up into `copy` and append the seal there. Returns (case head, entries, copy head, entries,
    title, schema version)."""
    fd = os.open(copy, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    dst = sqlite3.connect(copy, isolation_level=None)
    try:
        case.conn.backup(dst)  # one step: a consistent snapshot even while another process writes
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
        dst.execute("PRAGMA secure_delete = ON")
        dst.execute("BEGIN IMMEDIATE")
        try:
            n = int(dst.execute("SELECT count(*) FROM audit").fetchone()[0])
            _, head = audit.next_seq(dst)
            meta = dict(dst.execute("SELECT key, value FROM meta").fetchall())
            copy_head = audit.append(dst, who, SEAL, seal)
            dst.execute("COMMIT")
        except BaseException:
            if dst.in_transaction:
                dst.execute("ROLLBACK")
            raise
    finally:
        dst.close()
    return head, n, copy_head, n + 1, meta.get("title"), int(meta.get("schema_version", "0"))


@contextmanager
def _atomic_zip(out: Path) -> Iterator[zipfile.ZipFile]:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            yield zf
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o600) << 16
    return info


def _add_bytes(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    zf.writestr(_info(name), data)


def _add_file(zf: zipfile.ZipFile, name: str, path: Path) -> None:
    with open(path, "rb") as src, zf.open(_info(name), "w", force_zip64=True) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


# -- verifying ------------------------------------------------------------------------------------

@dataclass(slots=True)
class BundleCheck:
    """What `check_bundle` found: the problems (one line each), the manifest (when readable), and the head the
    bundled case's chain actually ends at (when it could be walked)."""

    path: str
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    manifest_sha256: str | None = None
    head: str | None = None
    entries: int | None = None
    source_head: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a zip file (what `stanch verify` checks as a bundle rather than a case)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def verify_bundle(zip_path: str | os.PathLike[str], expected_head: str | None = None,
                  tmp_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The problems found in the bundle (one line each); an empty list means it verifies."""
    return check_bundle(zip_path, expected_head, tmp_dir).problems


def check_bundle(zip_path: str | os.PathLike[str], expected_head: str | None = None,
                 tmp_dir: str | os.PathLike[str] | None = None) -> BundleCheck:
    """Check a bundle (see the module docstring). `expected_head`: a chain head recorded outside the case (the
    case's head when it was bundled, or the bundled copy's). `tmp_dir`: where the case copy is extracted."""
    p = Path(zip_path)
    result = BundleCheck(str(p))
    problems = result.problems
    if not p.is_file():
        problems.append(f"{p}: no such bundle file")
        return result
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        problems.append(f"{p}: not a readable zip ({e}); is this a stanch bundle?")
        return result
    with zf:
        refused = _refuse(zf)
        if refused:
            problems.append(f"{p}: {refused}; refusing to read this zip")
            return result
        manifest = _read_manifest(zf, p, result)
        if manifest is None:
            return result
        listed = {f["path"]: f for f in manifest["files"]}
        present = {i.filename for i in zf.infolist()} - {MANIFEST}
        problems += [f"{p}: {name}: in the zip but not in the manifest (added after bundling)"
                     for name in sorted(present - set(listed))]
        problems += [f"{p}: {name}: listed in the manifest but missing from the zip"
                     for name in sorted(set(listed) - present)]
        work = Path(tempfile.mkdtemp(prefix="stanch-bundle-", dir=tmp_dir))
        try:
            os.chmod(work, 0o700)
            need = sum(f["size"] for f in listed.values() if f["path"] == CASE_FILE)
            if need > shutil.disk_usage(work).free:
                problems.append(f"{p}: {CASE_FILE} needs {need:,} bytes to check and {work} has less free; pass"
                                " a roomier temporary folder")
                return result
            copy = work / CASE_FILE
            for name in sorted(set(listed) & present):
                _check_member(zf, p, listed[name], copy if name == CASE_FILE else None, problems)
            if CASE_FILE in present and copy.exists():
                _check_case(p, copy, manifest, result)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if expected_head is not None and expected_head.strip().lower() not in (result.head, result.source_head):
        problems.append(f"{p}: its chain head {result.head or '(unreadable)'} is not the head you recorded"
                        f" ({expected_head.strip()})")
    return result


def _refuse(zf: zipfile.ZipFile) -> str | None:
    """Why a zip is hostile or not stanch's (checked from the central directory, before any content is read)."""
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        shown = name.encode("unicode_escape").decode("ascii")[:200]
        if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            return f"entry {shown!r} has an absolute or unsafe name"
        if info.is_dir():
            return f"entry {shown!r} is a directory entry (stanch writes none)"
        if any(part in ("", ".", "..") for part in name.split("/")):
            return f"entry {shown!r} climbs out of the bundle or is not a plain path"
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.create_system == 3 and kind and kind != stat.S_IFREG:  # Unix mode bits: only a plain file will do
            return f"entry {shown!r} is a link or special file"
        if name in seen:
            return f"entry {shown!r} appears twice"
        seen.add(name)
    return None


def _read_manifest(zf: zipfile.ZipFile, p: Path, result: BundleCheck) -> dict[str, Any] | None:
    problems = result.problems
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        problems.append(f"{p}: no {MANIFEST}; not a stanch bundle")
        return None
    if info.file_size > _MAX_MANIFEST:
        problems.append(f"{p}: {MANIFEST} is {info.file_size:,} bytes, far more than stanch writes")
        return None
    try:
        raw = zf.read(MANIFEST)
        manifest = orjson.loads(raw)
    except (zipfile.BadZipFile, OSError, orjson.JSONDecodeError, ValueError) as e:
        problems.append(f"{p}: {MANIFEST} is unreadable ({e})")
        return None
    result.manifest_sha256 = hashlib.sha256(raw).hexdigest()
    why = _manifest_shape(manifest)
    if why:
        problems.append(f"{p}: {MANIFEST}: {why}")
        return None
    result.manifest = manifest
    if _manifest_bytes(manifest) != raw:
        problems.append(f"{p}: {MANIFEST} is not as stanch wrote it (edited after bundling)")
    return dict(manifest)


def _manifest_shape(m: Any) -> str | None:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        return f"not a {FORMAT} manifest"
    if m.get("version") != VERSION:
        return f"bundle version {m.get('version')!r}; this stanch reads version {VERSION}"
    if set(m) != _MANIFEST_KEYS:
        return f"unexpected fields {sorted(set(m) ^ _MANIFEST_KEYS)}"
    case = m["case"]
    if not isinstance(case, dict) or set(case) != _CASE_KEYS or case["file"] != CASE_FILE:
        return "its `case` section is not what stanch writes"
    if not all(isinstance(case[k], str) and _SHA256.match(case[k]) for k in ("audit_head", "source_head")):
        return "its chain heads are not SHA-256 hex"
    if not all(isinstance(case[k], int) for k in ("schema_version", "audit_entries", "source_entries")):
        return "its schema version and entry counts are not numbers"
    files = m["files"]
    if not isinstance(files, list) or not files:
        return "no files listed"
    names = set()
    for f in files:
        if not isinstance(f, dict) or set(f) != _FILE_KEYS or not isinstance(f["path"], str):
            return "a file entry is not {path, sha256, size}"
        if not isinstance(f["sha256"], str) or not _SHA256.match(f["sha256"]):
            return f"{f['path']}: its sha256 is not SHA-256 hex"
        if not isinstance(f["size"], int) or isinstance(f["size"], bool) or f["size"] < 0:
            return f"{f['path']}: its size is not a byte count"
        name = f["path"]
        if name != CASE_FILE and not (name.startswith(EXPORTS_DIR) and _EXPORT_NAME.match(name[len(EXPORTS_DIR):])
                                      and ".." not in name):
            return f"lists {name!r}, which is neither the case nor an export"
        if name in names:
            return f"lists {name!r} twice"
        names.add(name)
    if CASE_FILE not in names:
        return f"does not list {CASE_FILE}"
    return None


def _check_member(zf: zipfile.ZipFile, p: Path, entry: dict[str, Any], extract_to: Path | None,
                  problems: list[str]) -> None:
    name, size = entry["path"], entry["size"]
    info = zf.getinfo(name)
    if info.file_size != size:
        problems.append(f"{p}: {name}: {info.file_size:,} bytes, the manifest says {size:,} (changed after bundling)")
        return
    h = hashlib.sha256()
    got = 0
    out: IO[bytes] | None = None
    try:
        if extract_to is not None:
            fd = os.open(extract_to, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            out = os.fdopen(fd, "wb")
        with zf.open(info) as src:
            while got <= size and (chunk := src.read(min(_CHUNK, size + 1 - got))):
                h.update(chunk)
                got += len(chunk)
                if out is not None:
                    out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # e.g. Bad CRC-32: stored bytes were changed
        problems.append(f"{p}: {name}: corrupt in the zip ({e})")
        if extract_to is not None and out is not None:
            out.close()
            out = None
            extract_to.unlink()
        return
    finally:
        if out is not None:
            out.close()
    if got != size or h.hexdigest() != entry["sha256"]:
        problems.append(f"{p}: {name}: SHA-256 does not match the manifest (changed after bundling)")


def _check_case(p: Path, copy: Path, manifest: dict[str, Any], result: BundleCheck) -> None:
    """Walk the bundled copy's audit chain and compare it, and its seal, with the manifest."""
    problems = result.problems
    where = f"{p}: {CASE_FILE}"
    with open(copy, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            problems.append(f"{where}: not an SQLite file")
            return
    try:
        conn = sqlite3.connect(copy, isolation_level=None)
    except sqlite3.Error as e:
        problems.append(f"{where}: cannot be opened ({e})")
        return
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA cell_size_check = ON")
        kinds = {r[0] for r in conn.execute("SELECT type FROM sqlite_master")}
        if kinds - {"table", "index"}:
            problems.append(f"{where}: holds {', '.join(sorted(kinds - {'table', 'index'}))}, which stanch never"
                            " creates")
            return
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP_NAME:
            problems.append(f"{where}: not a stanch case")
            return
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            problems.append(f"{where}: case schema v{version} is newer than this stanch (v{SCHEMA_VERSION}); "
                            "upgrade stanch to check it")
            return
        if version != manifest["case"]["schema_version"]:
            problems.append(f"{where}: schema v{version}, the manifest says v{manifest['case']['schema_version']}")
        if version < SCHEMA_VERSION:
            migrate(conn, version)  # the extracted copy only; migrations touch no audited row
        head, entries, tampered = audit.verify(conn)
        result.head, result.entries = head, entries
        problems += [f"{where}: audit: {t}" for t in tampered]
        case = manifest["case"]
        if head != case["audit_head"] or entries != case["audit_entries"]:
            problems.append(f"{where}: its audit chain ends at {head} after {entries} entries, the manifest says "
                            f"{case['audit_head']} after {case['audit_entries']}")
        if meta.get("title") != case["title"]:
            problems.append(f"{where}: titled {meta.get('title')!r}, the manifest says {case['title']!r}")
        last = conn.execute("SELECT seq, operation, details, prev_hash FROM audit ORDER BY seq DESC LIMIT 1"
                            ).fetchone()
        seal = orjson.loads(last[2]) if last is not None and last[1] == SEAL and last[2] else None
        if seal is not None:
            result.source_head = last[3]
        exports = [f for f in manifest["files"] if f["path"] != CASE_FILE]
        if seal is None:
            problems.append(f"{where}: its last audit entry is not the bundle's seal")
        elif (seal != {"created_at": manifest["created_at"], "stanch_version": manifest["stanch_version"],
                       "files": exports}
              or last[3] != case["source_head"] or last[0] - 1 != case["source_entries"]):
            problems.append(f"{where}: its seal (audit entry {last[0]}) does not match the manifest (manifest edited"
                            " after bundling)")
    except (sqlite3.Error, ValueError, KeyError, TypeError) as e:
        problems.append(f"{where}: not a readable stanch case ({e})")
    finally:
        conn.close()
