"""The list of recently opened cases (paths and titles only; never anything from inside a case beyond its title).

Kept in `recent.json` beside the connector settings (`$STANCH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/stanch`, else
`~/.config/stanch`), newest first, at most `KEEP` entries. A missing or unreadable file is an empty list: the
launcher must open even when the file was damaged. Written atomically, mode 0600. No Textual import here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from connectors.config import config_dir

KEEP = 20
FILENAME = "recent.json"


def recent_path() -> Path:
    return config_dir() / FILENAME


def load() -> list[dict[str, Any]]:
    """Recent cases, newest first: {"path", "title", "opened"}; entries whose file is gone are marked."""
    try:
        doc = orjson.loads(recent_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    out: list[dict[str, Any]] = []
    for entry in doc.get("cases", []) if isinstance(doc, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            out.append({"path": entry["path"], "title": str(entry.get("title") or ""),
                        "opened": str(entry.get("opened") or ""), "exists": os.path.exists(entry["path"])})
    return out[:KEEP]


def remember(path: str | os.PathLike[str], title: str = "") -> None:
    """Put `path` first in the recent list. Failure to write is never fatal (the case itself is what matters)."""
    full = str(Path(path).resolve())
    entries = [e for e in load() if e["path"] != full]
    entries.insert(0, {"path": full, "title": title, "opened": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    doc = {"version": 1, "cases": [{k: e[k] for k in ("path", "title", "opened")} for e in entries[:KEEP]]}
    target = recent_path()
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".recent-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
