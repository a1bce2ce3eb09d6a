"""`stanch demo`: generate the bundled Salesloft-Drift-style incident, ingest it into a case."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson

from casefile.case import CaseError, create_case, open_case
from casefile.data import ingest_data
from casefile.ingest import ingest

DEFAULT_PATH = Path("stanch-demo.stanch")
# GTIG/Salesforce: UNC6395 used the stolen Drift tokens from 8 to at least 18 August 2025 (incidents.md §1.2).
ADVISORY_WINDOW = ("2025-08-08T00:00:00Z", "2025-08-18T23:59:59Z")
# The demo is worked as on the morning after the advisory's window: expiry is judged at this time.
AS_OF = "2025-08-19T09:00:00Z"
TITLE = "Demo: third-party OAuth integration compromise (Salesloft Drift style, Aug 2025)"


def _remove_old_demo(path: Path) -> None:
    """Replace an earlier demo case, never anything else."""
    if not path.exists():
        return
    try:
        with open_case(path, upgrade=False) as case:
            is_demo = case.meta().get("demo") == "1"
    except CaseError:
        is_demo = False
    if not is_demo:
        raise CaseError(f"{path}: exists and is not a stanch demo case; pass --case OTHER_PATH")
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            p.unlink()


def build_demo(path: Path | None, events: int = 50_000, seed: int = 7, analyst: str | None = None,
               quiet: bool = False, truth_dir: Path | None = None) -> Path:
    """Build the demo case at `path` (default ./stanch-demo.stanch) and return its path. `truth_dir` (tests
    only) receives the generator's ground truth; nothing in stanch reads it."""
    import connectors  # noqa: F401  (registers the parsers)
    from connectors.demo import generate

    if events < 2000:
        raise CaseError(f"--events {events}: the demo needs at least 2000 events to tell its story")
    path = path or DEFAULT_PATH
    _remove_old_demo(path)
    with tempfile.TemporaryDirectory(prefix="stanch-demo-") as tmp:
        files = generate(Path(tmp), events=events, seed=seed, truth_dir=truth_dir)
        with create_case(path, title=TITLE, analyst=analyst,
                         extra_meta={"demo": "1", "demo_seed": str(seed)}) as case:
            logs = [files.gateway, files.okta, files.vault, *([files.vault_lookups] if files.vault_lookups else [])]
            summaries = ingest(case, [str(p) for p in logs])
            # The responder exported the Cases the actor read, to look for secrets in them.
            if files.cases is not None:
                ingest_data(case, [str(files.cases)], object_type="Case")
            # What a responder knows on day one: the advisory's theft window, not the generator's truth.
            case.set_meta({"window_start": ADVISORY_WINDOW[0], "window_end": ADVISORY_WINDOW[1],
                           "policy": orjson.dumps({"as_of": AS_OF}).decode()})
    for s in summaries:
        if s.error:
            raise CaseError(s.error)
        if not quiet:
            print(f"{os.path.basename(s.path)}: {s.format}: {s.events_added:,} events")
    return path
