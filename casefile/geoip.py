"""Offline geolocation: country, city and ASN for an IP from MaxMind-format databases the responder points
to (`stanch ingest --geoip FILE`). Nothing is ever looked up online; a vendor's own geo fields win.
"""

from __future__ import annotations

import hashlib
from typing import Any

import maxminddb

from casefile.case import CaseError

_CACHE_MAX = 1 << 16


class GeoIP:
    """One or more MaxMind DB files (City, Country, ASN, or a combined one), read in order."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.paths = paths
        self._readers: list[Any] | None = None
        self._cache: dict[str, tuple[str | None, str | None, str | None]] = {}

    @staticmethod
    def check(paths: list[str]) -> list[dict[str, Any]]:
        """Open each file once; a one-line CaseError for one that is not a MaxMind DB. Returns provenance."""
        out = []
        for path in paths:
            try:
                with maxminddb.open_database(path) as reader:
                    meta = reader.metadata()
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
                raise CaseError(f"--geoip {path}: not a readable MaxMind DB file ({e}); give a .mmdb file "
                                "such as GeoLite2-City.mmdb or GeoLite2-ASN.mmdb") from e
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out.append({"path": path, "sha256": h.hexdigest(), "type": meta.database_type,
                        "build_epoch": meta.build_epoch})
        return out

    def lookup(self, ip: str) -> tuple[str | None, str | None, str | None]:
        """(country ISO code, city name, ASN) for `ip`; Nones where no database knows."""
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        if self._readers is None:
            self._readers = [maxminddb.open_database(p) for p in self.paths]
        country = city = asn = None
        for reader in self._readers:
            try:
                rec = reader.get(ip)
            except ValueError:  # not an IP address
                break
            if not isinstance(rec, dict):
                continue
            c = rec.get("country") or rec.get("registered_country")
            if country is None and isinstance(c, dict):
                country = c.get("iso_code")
            ct = rec.get("city")
            if city is None and isinstance(ct, dict):
                city = (ct.get("names") or {}).get("en")
            if asn is None and rec.get("autonomous_system_number") is not None:
                asn = str(rec["autonomous_system_number"])
        result = (country, city, asn)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[ip] = result
        return result


_OPEN: dict[tuple[str, ...], GeoIP] = {}


def for_paths(paths: tuple[str, ...]) -> GeoIP | None:
    """The process's GeoIP for these files (opened lazily, once per process)."""
    if not paths:
        return None
    geo = _OPEN.get(paths)
    if geo is None:
        geo = _OPEN[paths] = GeoIP(paths)
    return geo
