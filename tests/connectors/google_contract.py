"""Check stanch's Google Admin SDK requests and the fake's answers against Google's discovery documents.

The contract is the pair of discovery documents google-api-python-client ships in
`googleapiclient/discovery_cache/documents/` (`admin.directory_v1.json`, `admin.reports_v1.json`; Apache-2.0,
the package is pinned in pyproject's test extra). They are read from the installed package rather than copied:
the test extra needs the package anyway (`cross_check` builds every request a second time with
googleapiclient's own request builder), and `REVISIONS` below pins what was checked, so an upgrade that changes
the documents fails loudly instead of silently changing the contract.

Two independent checks per request:

- `Discovery.check(request, scope)`: the HTTP method and the path template of exactly one method, every
  required parameter present, every query parameter declared (by the method, or one of the document's global
  parameters) at location `query`, its type (`integer` with `minimum`/`maximum`, `boolean`), `enum`, `pattern`
  (fully matched), repetition, no body where the method takes none, and the access token's scope among the
  method's `scopes`.
- `cross_check(request)`: googleapiclient builds the same call from the same document (it raises `TypeError`
  for a missing required parameter, an enum or pattern violation) and must produce the same method, path and
  query (its added `alt=json` aside).

`check_body(schema, body)` checks a response body the fake serves against the document's schema (`$ref`,
property names and JSON types), so the fake cannot drift from what Google returns.

Nothing here looks for cloud credentials: googleapiclient gets an explicit `http=` object (no credentials are
resolved) and `no_cloud_credentials()` points the metadata-server variables at an unroutable address and makes
`google.auth.default` fail, so an accidental lookup is an error, not a 3-second probe.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

REVISIONS = {"admin.directory_v1": "20261104", "admin.reports_v1": "20260929"}
_GLOBAL_OK_UNUSED = {"alt"}


class ContractError(AssertionError):
    """A request (or body) the discovery document does not allow."""


def documents_dir() -> Path:
    import googleapiclient

    return Path(googleapiclient.__file__).resolve().parent / "discovery_cache" / "documents"


def load(name: str) -> dict[str, Any]:
    with open(documents_dir() / f"{name}.json", encoding="utf-8") as fh:
        return dict(json.load(fh))


@contextmanager
def no_cloud_credentials() -> Iterator[None]:
    """Within: no metadata server reachable, no ADC file, `google.auth.default` raises."""
    import google.auth

    saved = {k: os.environ.get(k) for k in ("GCE_METADATA_HOST", "GCE_METADATA_IP", "GOOGLE_APPLICATION_CREDENTIALS",
                                            "NO_GCE_CHECK")}
    os.environ.update({"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
                       "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/stanch-test-adc.json", "NO_GCE_CHECK": "True"})
    original = google.auth.default

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a test asked google.auth for cloud credentials")

    google.auth.default = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        google.auth.default = original  # type: ignore[assignment]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _methods(resources: dict[str, Any], prefix: str = "") -> Iterator[tuple[list[str], dict[str, Any]]]:
    for rname, res in resources.items():
        for mname, method in res.get("methods", {}).items():
            yield [*([prefix] if prefix else []), rname, mname], method
        yield from ((path, m) for path, m in _methods(res.get("resources", {}), ""))


class Discovery:
    """One discovery document, indexed by method."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.methods: dict[str, dict[str, Any]] = {}
        self.chains: dict[str, list[str]] = {}
        for chain, method in _methods(doc["resources"]):
            self.methods[method["id"]] = method
            self.chains[method["id"]] = chain
        self.templates = {mid: self._template(m["path"]) for mid, m in self.methods.items()}
        self.base = "/" + (httpx.URL(doc["rootUrl"]).path.strip("/") + "/" + doc["servicePath"]).strip("/")
        self.base = self.base.rstrip("/") + "/"

    def _template(self, path: str) -> re.Pattern[str]:
        out, pos = "", 0
        for m in re.finditer(r"\{(\+?)([^}]+)\}", path):
            out += re.escape(path[pos:m.start()])
            out += f"(?P<{m.group(2).replace('.', '_')}>{'.+' if m.group(1) else '[^/]+'})"
            pos = m.end()
        return re.compile(out + re.escape(path[pos:]))

    def match(self, request: httpx.Request) -> tuple[str, dict[str, str]]:
        """The method id and the decoded path parameters of `request`; ContractError when none or two match."""
        raw = request.url.raw_path.decode().split("?")[0]
        if not raw.startswith(self.base):
            raise ContractError(f"{request.method} {raw}: not under {self.base}")
        rel = raw[len(self.base):]
        found = []
        for mid, method in self.methods.items():
            if method["httpMethod"] != request.method:
                continue
            m = self.templates[mid].fullmatch(rel)
            if m:
                found.append((len(re.sub(r"\{[^}]+\}", "", method["path"])), mid,
                              {k: unquote(v) for k, v in m.groupdict().items()}))
        if not found:
            raise ContractError(f"{request.method} {raw}: no method of {self.doc['id']} has this path")
        found.sort(reverse=True)
        if len(found) > 1 and found[0][0] == found[1][0]:
            raise ContractError(f"{request.method} {raw}: ambiguous ({found[0][1]}, {found[1][1]})")
        return found[0][1], found[0][2]

    def _param(self, method: dict[str, Any], name: str) -> dict[str, Any] | None:
        spec = method.get("parameters", {}).get(name)
        return spec if spec is not None else self.doc.get("parameters", {}).get(name)

    def violations(self, request: httpx.Request, scope: str | None = None) -> tuple[str | None, list[str]]:
        try:
            mid, path_params = self.match(request)
        except ContractError as e:
            return None, [str(e)]
        method = self.methods[mid]
        out: list[str] = []
        query: dict[str, list[str]] = {}
        for k, v in request.url.params.multi_items():
            query.setdefault(k, []).append(v)
        for name, values in query.items():
            spec = self._param(method, name)
            if spec is None:
                out.append(f"{mid}: unknown query parameter {name!r}")
                continue
            if spec.get("location") != "query":
                out.append(f"{mid}: {name!r} is a {spec.get('location')} parameter, sent in the query")
            if len(values) > 1 and not spec.get("repeated"):
                out.append(f"{mid}: {name!r} sent {len(values)} times, not repeated")
            out.extend(f"{mid}: {e}" for v in values for e in self._value_errors(name, spec, v))
        for name, value in path_params.items():
            spec = method["parameters"].get(name)
            if spec is None or spec.get("location") != "path":
                out.append(f"{mid}: path parameter {name!r} undeclared")
            else:
                out.extend(f"{mid}: {e}" for e in self._value_errors(name, spec, value))
        for name, spec in method.get("parameters", {}).items():
            if spec.get("required") and name not in query and name not in path_params:
                out.append(f"{mid}: required parameter {name!r} missing")
        if request.content and "request" not in method:
            out.append(f"{mid}: sends a body, the method takes none")
        if scope is not None and scope not in method.get("scopes", []):
            out.append(f"{mid}: token scope {scope} is not among {method.get('scopes')}")
        return mid, out

    @staticmethod
    def _value_errors(name: str, spec: dict[str, Any], value: str) -> list[str]:
        errs: list[str] = []
        kind = spec.get("type")
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", value):
                return [f"{name}={value!r} is not an integer"]
            n = int(value)
            if "minimum" in spec and n < int(spec["minimum"]):
                errs.append(f"{name}={n} below minimum {spec['minimum']}")
            if "maximum" in spec and n > int(spec["maximum"]):
                errs.append(f"{name}={n} above maximum {spec['maximum']}")
        elif kind == "boolean" and value not in ("true", "false"):
            errs.append(f"{name}={value!r} is not a boolean")
        if "enum" in spec and value not in spec["enum"]:
            errs.append(f"{name}={value!r} not in its enum")
        if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
            errs.append(f"{name}={value!r} does not match {spec['pattern']!r}")
        if not value:
            errs.append(f"{name} is empty")
        return errs

    def check(self, request: httpx.Request, scope: str | None = None) -> str:
        """The method id of a request that keeps the contract; ContractError listing every violation."""
        mid, errs = self.violations(request, scope)
        if errs or mid is None:
            raise ContractError("; ".join(errs))
        return mid

    # --------------------------------------------------------------------------------- googleapiclient

    def cross_check(self, request: httpx.Request) -> None:
        """Build the same call with googleapiclient from the same document; it must agree on method, path and
        query (googleapiclient adds `alt=json`)."""
        import httplib2
        from googleapiclient.discovery import build_from_document

        mid, path_params = self.match(request)
        method = self.methods[mid]
        kwargs: dict[str, Any] = dict(path_params)
        for k, v in request.url.params.multi_items():
            spec = self._param(method, k) or {}
            kwargs[k] = int(v) if spec.get("type") == "integer" else v
        with no_cloud_credentials():
            service = build_from_document(self.doc, http=httplib2.Http())
            node: Any = service
            chain = self.chains[mid]
            for part in chain[:-1]:
                node = getattr(node, part)()
            built = getattr(node, chain[-1])(**kwargs)
        theirs = httpx.URL(built.uri)
        ours_q = sorted(request.url.params.multi_items())
        theirs_q = sorted((k, v) for k, v in theirs.params.multi_items() if k not in _GLOBAL_OK_UNUSED)
        if built.method != request.method or theirs.raw_path.split(b"?")[0] != request.url.raw_path.split(b"?")[0] \
                or ours_q != theirs_q:
            raise ContractError(f"{mid}: googleapiclient builds {built.method} {built.uri}, stanch sent "
                                f"{request.method} {request.url}")

    # --------------------------------------------------------------------------------- bodies

    def check_body(self, schema: str | dict[str, Any], body: Any, where: str = "$") -> None:
        """A response body against the document's schema: `$ref`, known property names, JSON types."""
        spec = self.doc["schemas"][schema] if isinstance(schema, str) else schema
        if "$ref" in spec:
            self.check_body(spec["$ref"], body, where)
            return
        kind = spec.get("type")
        py = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
        if kind in py and (not isinstance(body, py[kind]) or (kind in ("integer", "number") and isinstance(body, bool))):
            raise ContractError(f"{where}: expected {kind}, got {type(body).__name__}")
        if kind == "object":
            props = spec.get("properties", {})
            extra = spec.get("additionalProperties")
            for k, v in body.items():
                if k in props:
                    self.check_body(props[k], v, f"{where}.{k}")
                elif extra is not None:
                    self.check_body(extra, v, f"{where}.{k}")
                else:
                    raise ContractError(f"{where}: property {k!r} not in the schema")
        elif kind == "array":
            for i, v in enumerate(body):
                self.check_body(spec["items"], v, f"{where}[{i}]")
