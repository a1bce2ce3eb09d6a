"""Cut Okta's management OpenAPI document down to the operations stanch calls, sanitised for Prism 5.14.

Usage (from the repository root; the input is Okta's `dist/current/management-minimal.yaml`):

    .venv/bin/python tests/peers/prism/subset.py /path/to/management-minimal.yaml \
        tests/fixtures/okta/spec/okta-management-subset.yaml

What it does, and nothing else (the output is otherwise Okta's text, key order kept):

1. keeps only the paths and methods in `OPERATIONS` (path-level `parameters` come along);
2. sanitises for Prism (test-peers.md §3): inside example values (`example`, and `value` of each entry of
   `examples` / `components.examples`) every `$ref` key is renamed `x-example-ref`, because those are
   JSON-Schema documents quoted as examples, not references (Prism otherwise crashes on
   `#/definitions/base`); an `examples` entry that `$ref`s a missing `components.examples` item is dropped;
3. keeps every component the kept operations reach through `$ref`, transitively, and drops the rest;
4. drops `x-codeSamples` (curl snippets, not contract) to keep the fixture small.

Stdlib + PyYAML only. The output is deterministic: the same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

#: path -> methods stanch's Okta connector calls (connectors/okta.py, live section).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "/api/v1/users/{id}": ("get",),  # whoami: GET /api/v1/users/me
    "/api/v1/logs": ("get",),
    "/api/v1/api-tokens": ("get",),
    "/api/v1/api-tokens/{apiTokenId}": ("get", "delete"),
    "/api/v1/apps/{appId}": ("get",),
    "/api/v1/apps/{appId}/tokens": ("get", "delete"),
    "/api/v1/apps/{appId}/tokens/{tokenId}": ("get", "delete"),
    "/api/v1/apps/{appId}/lifecycle/activate": ("post",),
    "/api/v1/apps/{appId}/lifecycle/deactivate": ("post",),
    "/api/v1/users/{userId}/clients": ("get",),
    "/api/v1/users/{userId}/grants": ("get", "delete"),
    "/api/v1/users/{userId}/grants/{grantId}": ("get", "delete"),
    "/api/v1/users/{userId}/sessions": ("delete",),
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
_DROP_KEYS = {"x-codeSamples"}


def _rename_refs(value: Any) -> Any:
    """An example value with every `$ref` key renamed `x-example-ref` (recursively)."""
    if isinstance(value, dict):
        return {("x-example-ref" if k == "$ref" else k): _rename_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_refs(v) for v in value]
    return value


def _sanitise(node: Any, known_examples: set[str], in_examples_map: bool = False) -> Any:
    """Rename `$ref` inside example values; drop `examples` entries that point at missing examples."""
    if isinstance(node, list):
        return [_sanitise(v, known_examples) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if in_examples_map:  # `value` is one named example: {$ref} or {summary, value, ...}
            if isinstance(value, dict) and isinstance(value.get("$ref"), str):
                ref = value["$ref"]
                if ref.startswith("#/components/examples/") and ref.rsplit("/", 1)[1] not in known_examples:
                    continue
                out[key] = dict(value)
                continue
            if isinstance(value, dict):
                out[key] = {k: (_rename_refs(v) if k == "value" else _sanitise(v, known_examples))
                            for k, v in value.items() if k not in _DROP_KEYS}
                continue
        if key == "example":
            out[key] = _rename_refs(value)
        elif key == "examples" and isinstance(value, dict):
            out[key] = _sanitise(value, known_examples, in_examples_map=True)
        else:
            out[key] = _sanitise(value, known_examples)
    return out


def _refs(node: Any) -> set[str]:
    """Every local `$ref` target (`#/components/...`) in `node`."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SystemExit(f"dangling reference {ref}")
        node = node[part]
    return node


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.get("components", {})
    known_examples = set(components.get("examples", {}))
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = spec["paths"].get(path)
        if item is None:
            raise SystemExit(f"{path} is not in the input spec")
        kept = {k: v for k, v in item.items() if k not in _METHODS or k in methods}
        missing = [m for m in methods if m not in item]
        if missing:
            raise SystemExit(f"{path} has no {', '.join(missing)} in the input spec")
        paths[path] = _sanitise(kept, known_examples)

    # Components reached from the kept paths, transitively. Each is sanitised before its refs are read,
    # so references quoted inside example values do not pull in (or break on) anything.
    out_components: dict[str, dict[str, Any]] = {}
    todo = sorted(_refs(paths))
    seen: set[str] = set()
    security = components.get("securitySchemes")
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref[2:].split("/")
        if len(parts) != 3 or parts[0] != "components":
            raise SystemExit(f"unsupported reference {ref}")
        section, name = parts[1], parts[2].replace("~1", "/").replace("~0", "~")
        node = _sanitise(_resolve(spec, ref), known_examples)
        if section == "examples" and isinstance(node, dict) and "value" in node:
            node = {k: (_rename_refs(v) if k == "value" else v) for k, v in node.items()}
        out_components.setdefault(section, {})[name] = node
        todo.extend(sorted(_refs(node) - seen))

    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "paths":
            out["paths"] = paths
        elif key == "components":
            comps: dict[str, Any] = {}
            for section in components:  # the input's section order
                if section == "securitySchemes" and security is not None:
                    comps[section] = security
                elif section in out_components:
                    comps[section] = {k: out_components[section][k] for k in sorted(out_components[section])}
            out["components"] = comps
        elif key == "tags":
            used = {t for item in paths.values() for m, op in item.items()
                    if m in _METHODS for t in op.get("tags", [])}
            out["tags"] = [t for t in value if isinstance(t, dict) and t.get("name") in used]
        elif key.startswith("x-"):
            continue  # vendor extensions for Okta's doc site (tag groups): not contract
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("input", type=Path, help="Okta management-minimal.yaml")
    ap.add_argument("output", type=Path, help="where to write the subset (.yaml)")
    args = ap.parse_args(argv)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with args.input.open("rb") as fh:
        spec = yaml.load(fh, Loader=loader)  # noqa: S506  (a safe loader)
    result = subset(spec)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(result, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    n_ops = sum(len(m) for m in OPERATIONS.values())
    n_comp = sum(len(v) for k, v in result.get("components", {}).items() if k != "securitySchemes")
    print(f"wrote {args.output}: {len(result['paths'])} paths, {n_ops} operations, {n_comp} components, "
          f"{len(text.encode())} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
