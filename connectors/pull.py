"""Live pulls: what a vendor module hands the case when it fetches events or inventory over its API.

A vendor module that can pull defines

    async def pull(settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
                   cursors: Mapping[str, str], on_journal=None) -> AsyncIterator[Page]

and yields one `Page` per vendor page, in order. Each page's records are serialised exactly the way the
vendor's own export writes one record (one JSON object per line for Okta's System Log, CloudTrail records,
Keycloak events…), and `format` names the registered parser that reads that export. So a pulled event and
the same event in an exported file go through the same parser into the same canonical record with the same
id, and dedupe to one.

`cursors` holds, per stream, the cursor the last stored page of the previous pull left (empty on a first
pull). The module resumes from it when present, else starts at `since`; `until` bounds the pull. A page's
`cursor` is saved only after its records are stored, so a pull that dies mid-way resumes after the last
stored page and a page fetched twice adds nothing. The cursor is opaque to everything but its module; it
must not contain a secret (Okta's `after` value, a timestamp, an event id are fine).

`endpoint` names what was asked (method, path and non-secret query) for the case's `sources` table.

A module whose API can narrow a pull (CloudTrail by access key id, a System Log filter) also accepts
`filters: Mapping[str, str]` (`stanch pull --filter NAME=VALUE`), documents the names it takes, rejects
others with a `ConfigError`, and names its streams after the filter (`cloudtrail:AccessKeyId=AKIA…`) so a
filtered pull keeps its own cursor. A module without `filters` is refused a filtered pull.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import orjson

from casefile import live
from casefile.case import Case
from connectors.config import KINDS, ConfigError, ConnectorSettings
from connectors.http import JournalEntry


@dataclass(frozen=True)
class Page:
    """One vendor page, ready for the parser named by `format`."""

    stream: str
    format: str
    records: list[bytes] = field(default_factory=list)
    cursor: str | None = None
    endpoint: str = ""

    @staticmethod
    def json_lines(stream: str, fmt: str, records: list[Any], cursor: str | None, endpoint: str) -> Page:
        """A page whose records are JSON values, one per line (orjson; key order kept)."""
        return Page(stream, fmt, [orjson.dumps(r) for r in records], cursor, endpoint)

    def data(self) -> bytes:
        """The page as the bytes of an export file: one record per line."""
        return b"".join(r.rstrip(b"\n") + b"\n" for r in self.records)


class PullHook(Protocol):
    def __call__(self, settings: ConnectorSettings, secret: str, *, since: str | None, until: str | None,
                 cursors: Mapping[str, str],
                 on_journal: Callable[[JournalEntry], None] | None = None) -> AsyncIterator[Page]: ...


def pull_hook(kind: str) -> PullHook | None:
    """The kind's `pull`, or None when its module defines none."""
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}")
    modname = f"connectors.{kind}"
    if importlib.util.find_spec(modname) is None:
        return None
    hook = getattr(importlib.import_module(modname), "pull", None)
    return cast(PullHook, hook) if callable(hook) else None


def can_pull() -> list[str]:
    """The connector kinds that can pull."""
    return [k for k in KINDS if pull_hook(k) is not None]


@dataclass(slots=True)
class PullSummary:
    """What one `stanch pull` did."""

    connector: str
    kind: str
    pages: int = 0
    events_seen: int = 0
    events_added: int = 0
    duplicates: int = 0
    malformed: int = 0
    pages_already_stored: int = 0
    streams: dict[str, str | None] = field(default_factory=dict)  # stream → cursor saved
    problems: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[PullSummary], None]


def parse_filters(items: list[str] | None) -> dict[str, str]:
    """`NAME=VALUE` strings (the CLI's `--filter`) as a dict; raises ConfigError naming a bad one."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--filter {item!r}: expected NAME=VALUE (e.g. AccessKeyId=AKIA…)")
        out[name.strip()] = value.strip()
    return out


def run_pull(case: Case, settings: ConnectorSettings, secret: str, *, since: str | None = None,
             until: str | None = None, reset: bool = False, progress: ProgressFn | None = None,
             filters: Mapping[str, str] | None = None, **hook_options: Any) -> PullSummary:
    """Pull from one connector into `case`, page by page, resuming from the saved cursors.

    Each page is stored (through the parser its module names) before its cursor is saved, so an
    interruption loses nothing and repeats at most one page. `reset` forgets the saved cursors first.
    Raises `ConfigError` when the kind cannot pull, `ConnectorError` when the vendor fails (pages stored
    before it stay), `CaseError` when a page cannot be stored.
    """
    hook = pull_hook(settings.kind)
    if hook is None:
        raise ConfigError(f"connector {settings.name}: kind {settings.kind} cannot pull yet; kinds that can: "
                          f"{', '.join(can_pull()) or 'none'}")
    if filters:
        if "filters" not in inspect.signature(hook).parameters:
            raise ConfigError(f"connector {settings.name}: kind {settings.kind} takes no --filter")
        hook_options["filters"] = dict(filters)
    started = time.perf_counter()
    summary = PullSummary(settings.name, settings.kind)
    if reset:
        live.forget_cursors(case, settings.name)
    saved = live.cursors(case, settings.name)
    live.pull_started(case, settings.name, settings.kind, since, until, saved)
    outcome = "failed"
    try:
        async def drive() -> None:
            async for page in hook(settings, secret, since=since, until=until, cursors=saved, **hook_options):
                stored = live.store_page(case, settings.name, page.stream, page.format, page.data(), page.cursor,
                                         page.endpoint)
                summary.pages += 1
                summary.pages_already_stored += stored.already_ingested
                summary.events_seen += stored.events_seen
                summary.events_added += stored.events_added
                summary.duplicates += stored.duplicates
                summary.malformed += stored.malformed
                summary.problems.extend(stored.problems[: max(0, 100 - len(summary.problems))])
                summary.streams[page.stream] = page.cursor or summary.streams.get(page.stream) or saved.get(
                    page.stream)
                if progress is not None:
                    progress(summary)

        asyncio.run(drive())
        outcome = "done"
    finally:
        summary.seconds = time.perf_counter() - started
        live.pull_finished(case, settings.name, outcome, summary.pages, summary.events_added)
    return summary
