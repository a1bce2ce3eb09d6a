"""Untrusted text (anything from a log or an API) is shown literally: no markup, no control characters."""

from __future__ import annotations

import re

from rich.text import Text

# C0 and C1 controls, and every Unicode Bidi_Control character (the marks ALM, LRM, RLM too, not only the
# embeddings, overrides and isolates): a log field must not reorder what the responder reads.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: object, limit: int | None = None) -> str:
    """`value` as a string with control and bidi control characters replaced by `?`."""
    s = "" if value is None else str(value)
    s = _CONTROL.sub("?", s).replace("\n", " ").replace("\t", " ")
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def literal(value: object, limit: int | None = None, style: str = "") -> Text:
    """A rich Text that renders `value` exactly (markup is never interpreted)."""
    return Text(clean(value, limit), style=style)
