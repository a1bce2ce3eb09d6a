"""Timestamps: every event time is stored as ISO 8601 UTC ending in `Z`, keeping the source's precision.

`ts` (integer microseconds since the epoch) is stored beside it for ordering and ranges.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*(Z|z|[+-]\d{2}:?\d{2}|UTC)?$"
)
_CLF = re.compile(r"^(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*([+-]\d{4})$")
_SFDC = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$")
_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


_ZERO_OFFSETS = frozenset({"Z", "z", "UTC", "+00:00", "-00:00", "+0000", "-0000"})


class TimeError(ValueError):
    """A value that is not a time stanch can read."""


def _offset(tz: str | None) -> timedelta:
    if not tz or tz in ("Z", "z", "UTC"):
        return timedelta(0)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))


def _format(dt: datetime, frac: str | None) -> str:
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _build(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str | None, tz: str | None) -> str:
    dt = datetime(y, mo, d, h, mi, s, tzinfo=UTC) - _offset(tz)
    return _format(dt, frac)


def to_utc_iso(value: str | int | float) -> str:
    """Any timestamp stanch meets → `YYYY-MM-DDTHH:MM:SS[.fraction]Z` in UTC, keeping the fraction's digits.

    Reads ISO 8601 with or without offset (no offset means UTC), epoch seconds/ms/µs/ns (by magnitude),
    nginx/CLF `17/Aug/2025:11:15:42 +0000` and Salesforce `20250817111542.000`.
    """
    if isinstance(value, bool):
        raise TimeError(f"not a time: {value!r}")
    if isinstance(value, float):
        if value != value or abs(value) > 1e19:  # NaN, or past any epoch unit stanch reads
            raise TimeError(f"not a time: {value!r}")
        return _from_epoch(str(int(value)) if value.is_integer() else f"{value:.6f}".rstrip("0"))
    if isinstance(value, int):
        return _from_epoch(str(value))
    if not isinstance(value, str):  # a JSON list or object where a log should have a time
        raise TimeError(f"not a time: {type(value).__name__}")
    text = value.strip().strip("[]")
    m = _ISO.match(text)
    if m:
        y, mo, d, h, mi, s, frac, tz = m.groups()
        if tz is None or tz in _ZERO_OFFSETS:
            # Already UTC (the common case in logs): no arithmetic, just the canonical spelling.
            # to_micros validates the fields when the event is stored.
            return f"{y}-{mo}-{d}T{h}:{mi}:{s}.{frac}Z" if frac else f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"
        try:
            return _build(int(y), int(mo), int(d), int(h), int(mi), int(s), frac, tz)
        except ValueError as e:
            raise TimeError(f"not a time: {value!r}") from e
    try:  # a day, hour or offset out of range is not a time either (ValueError, OverflowError from datetime)
        m = _CLF.match(text)
        if m and m.group(2) in _MONTHS:
            d, mon, y, h, mi, s, frac, tz = m.groups()
            return _build(int(y), _MONTHS[mon], int(d), int(h), int(mi), int(s), frac, tz)
        m = _SFDC.match(text)
        if m:
            y, mo, d, h, mi, s, frac = m.groups()
            return _build(int(y), int(mo), int(d), int(h), int(mi), int(s), frac, None)
    except (ValueError, OverflowError) as e:
        raise TimeError(f"not a time: {value!r}") from e
    if re.fullmatch(r"\d{9,19}(\.\d+)?", text):
        return _from_epoch(text)
    raise TimeError(f"not a time: {value!r}")


def _from_epoch(text: str) -> str:
    whole, _, frac = text.partition(".")
    n = int(whole)
    digits = len(whole)
    if digits <= 11:  # seconds
        secs, sub = n, frac
    elif digits <= 14:  # milliseconds
        secs, sub = divmod(n, 1000)[0], f"{n % 1000:03d}" + frac
    elif digits <= 17:  # microseconds
        secs, sub = divmod(n, 1_000_000)[0], f"{n % 1_000_000:06d}" + frac
    else:  # nanoseconds
        secs, sub = divmod(n, 1_000_000_000)[0], f"{n % 1_000_000_000:09d}"
    dt = datetime.fromtimestamp(secs, tz=UTC)
    return _format(dt, sub or None)


_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> days since the epoch (validated by datetime once)


def to_micros(iso: str) -> int:
    """Microseconds since the epoch for a stored `...Z` time (the fraction truncated to µs)."""
    base, _, frac = iso.rstrip("Z").partition(".")
    day = _DAYS.get(base[:10])
    if day is None:
        day = int(datetime(int(base[0:4]), int(base[5:7]), int(base[8:10]), tzinfo=UTC).timestamp()) // 86400
        if len(_DAYS) < 100_000:
            _DAYS[base[:10]] = day
    h, mi, s = int(base[11:13]), int(base[14:16]), int(base[17:19])
    if h > 23 or mi > 59 or s > 60 or base[10] != "T":
        raise TimeError(f"not a time: {iso!r}")
    micros = int((frac + "000000")[:6]) if frac else 0
    return ((day * 86400 + h * 3600 + mi * 60 + s) * 1_000_000) + micros


def parse_when(value: str, now: datetime | None = None) -> str:
    """A time given on the command line: ISO 8601, or relative to now (`24h`, `7d`, `30m`, `2w`)."""
    m = _RELATIVE.match(value.strip())
    if m:
        ref = now or datetime.now(tz=UTC)
        dt = ref - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return to_utc_iso(value)


def now_iso() -> str:
    """Now, UTC, microsecond precision."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros_to_iso(ts: int) -> str:
    """Fixed-width `...T..:..:...ffffffZ` for a µs timestamp, so stored values also sort as text."""
    secs, micros = divmod(ts, 1_000_000)
    return datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"
