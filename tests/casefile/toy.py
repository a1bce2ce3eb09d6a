"""A toy JSON-lines format for casefile tests, so they do not depend on any vendor parser."""

from __future__ import annotations

import orjson

from casefile import formats
from casefile.records import CredentialRef, Event, Parsed, Problem


def parse(src):
    for n, line in src.lines():
        if not line.strip():
            yield Problem(n, "skipped", "blank line")
            continue
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Problem(n, "malformed", "not JSON")
            continue
        cred = CredentialRef(keys=tuple(d["keys"]), kind=d.get("kind", "access"),
                             client=d.get("client")) if d.get("keys") else None
        subj = CredentialRef(keys=tuple(d["subject"])) if d.get("subject") else None
        yield Parsed(n, Event(time=d["t"], vendor="toy", action=d.get("action", "api.call"), raw=d,
                              vendor_id=d.get("id"), credential=cred, subject=subj, src_ip=d.get("ip"),
                              user_agent=d.get("ua"), principal=d.get("principal"),
                              resource=d.get("res")), id_text=line)


def sniff(head):
    return 0.9 if head and head[0].startswith('{"t"') else 0.0


TOY = formats.register(formats.Format("toy-jsonl", "toy", "test-only JSON lines", parse, sniff))
