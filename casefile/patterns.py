"""What an event's resource is, beyond its text: its pattern (ids folded to `{id}`) and the objects it read.

Both are derived at ingest (in the parser workers, one regex pass per event) and stored beside the event
(`events.pattern`, `events.objects`), so the blast radius groups a token's calls by pattern in SQLite instead of
folding every distinct URL in Python at question time. They are derived columns: not part of an event's audited
content, recomputable from it.

Object readers are vendor knowledge (Salesforce SOQL `FROM Account`, `/sobjects/Case/<id>`): connector modules
register them here, the way they register parsers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

# Path segments that are ids: numbers, UUIDs, long hex, mixed letters-and-digits of 12 or more (Salesforce
# `500Aa…`, Okta `00u…`), long opaque tokens with `_`, `-` or `.`.
_ID = (r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{12,}"
       r"|(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}|(?=[A-Za-z0-9_.-]*\d)[A-Za-z0-9_.-]{24,}")
ID_SEGMENT = re.compile(f"^(?:{_ID})$")
_ID_IN_PATH = re.compile(f"(?<=/)(?:{_ID})(?=/|$)")

ObjectReader = Callable[[str, str | None, str], list[str]]
OBJECT_READERS: list[ObjectReader] = []


def register_object_reader(fn: ObjectReader) -> ObjectReader:
    """`fn(vendor, method, resource) -> [object names]` for the objects a call read (vendor knowledge)."""
    OBJECT_READERS.append(fn)
    objects_read.cache_clear()
    return fn


# Logs repeat resources (a gateway's 200,000 calls held 16,000 distinct URLs): both derivations are cached per
# process, so a worker pays for each distinct resource once.
@lru_cache(maxsize=1 << 16)
def resource_pattern(resource: str | None) -> str:
    """A resource with its ids folded to `{id}` and its query string dropped (`/sobjects/Case/{id}`)."""
    if not resource:
        return ""
    path = resource.partition("?")[0]
    if "/" not in path:
        return path
    return _ID_IN_PATH.sub("{id}", path)


@lru_cache(maxsize=1 << 16)
def objects_read(vendor: str, method: str | None, resource: str | None) -> str | None:
    """The objects a call read, comma-joined and sorted, or None."""
    if not resource or not OBJECT_READERS:
        return None
    found = {o for reader in OBJECT_READERS for o in reader(vendor, method, resource)}
    return ",".join(sorted(found)) if found else None
