"""Cut a standalone OpenAPI 3 document out of a big vendor spec, for Prism: a generic, repeatable subset tool.

Keeps only the paths matching the given regexes, then copies every `#/components/...` object they reach through
`$ref`, transitively, so the output has no dangling reference. References stay internal (nothing is
dereferenced), which keeps recursive schemas safe. The method follows test-peers-saas.md §2.3 (`subset.py`,
used there for GitHub, Microsoft Graph and Google); this file is the committed, general version of it.

Usage (from the repository root):

    .venv/bin/python tests/peers/prism/cut.py SPEC.json OUT.json REGEX [REGEX ...] [options]

    REGEX                 a path is kept when any regex matches it (`re.search`, on the path as the spec writes
                          it, before --strip / --prefix)
    --methods get,post    keep only these methods (path-level `parameters`, `summary`, `description` stay)
    --example METHOD:PATH=FILE
                          FILE (JSON) becomes the `example` of the first 2xx response of that operation (PATH as
                          the spec writes it). A shared `$ref` response is copied into the operation first, so
                          no other operation changes. FILE is read relative to the current directory.
    --strip PREFIX        also serve each kept path with PREFIX removed from every segment: Microsoft Graph writes
                          `/applications/{application-id}/microsoft.graph.addPassword`, SDKs and docs call
                          `/applications/{id}/addPassword`, and Graph answers both; `--strip microsoft.graph.`
                          serves both. An alias never replaces a path the spec already has.
    --prefix P            prepend P to every output path (Graph: `/v1.0`). Prism ignores the base path in
                          `servers`, so the version segment must be in the paths to be routed.
    --drop-required NAME  remove NAME from every `required` list (Graph's generated spec marks `@odata.type`
                          required in 1,419 schemas, so a correct PATCH body would be refused)
    --bearer              add an HTTP bearer security scheme and make it the global requirement (Prism then
                          answers 401 without `Authorization`); drops each operation's own `security`. A local
                          addition, for specs that declare no scheme (APIs.guru's Graph, GitHub)
    --public REGEX        with --bearer: operations on matching output paths get `security: []` (no auth)
    --title-suffix TEXT   appended to `info.title` (default " (subset)")

The output is deterministic: the same input and arguments give the same bytes (paths in the input's order, then
the aliases; components sorted by name; JSON with indent 1 and a final newline). Stdlib only; JSON input only
(convert YAML first). Prints a one-line summary to stderr. Exit status 2 on a bad argument or a dangling or
external `$ref`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_PATH_ITEM_KEYS = ("parameters", "summary", "description", "servers")


class CutError(Exception):
    """A problem with the input or the arguments (exit status 2)."""


def _refs(node: Any, out: set[str]) -> set[str]:
    """Every `$ref` string in `node`, added to `out`."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                out.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _pointer(ref: str) -> list[str]:
    if not ref.startswith("#/"):
        raise CutError(f"external $ref not supported: {ref}")
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in _pointer(ref):
        if not isinstance(node, dict) or part not in node:
            raise CutError(f"dangling $ref: {ref}")
        node = node[part]
    return node


def _unrequire(node: Any, names: set[str]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            req = item.get("required")
            if isinstance(req, list):
                kept = [r for r in req if r not in names]
                if kept:
                    item["required"] = kept
                else:
                    del item["required"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _set_example(doc: dict[str, Any], item: dict[str, Any], method: str, path: str, value: Any) -> None:
    op = item.get(method)
    if not isinstance(op, dict):
        raise CutError(f"--example {method}:{path}: the spec has no {method.upper()} on that path")
    responses = op.get("responses") or {}
    codes = [c for c in responses if str(c).startswith("2")]
    if not codes:
        raise CutError(f"--example {method}:{path}: the operation has no 2xx response")
    code = sorted(codes, key=str)[0]
    response = responses[code]
    while isinstance(response, dict) and "$ref" in response:  # a shared response: copy it into this operation
        response = copy.deepcopy(_resolve(doc, response["$ref"]))
    response = copy.deepcopy(response)
    content = response.setdefault("content", {})
    media: dict[str, Any] | None = content.get("application/json") or next(iter(content.values()), None)
    if media is None:
        media = content["application/json"] = {}
    media.pop("examples", None)
    media["example"] = value
    responses[code] = response


def cut(doc: dict[str, Any], patterns: list[str], *, methods: set[str] | None = None,
        examples: dict[tuple[str, str], Any] | None = None, strip: list[str] | None = None, prefix: str = "",
        drop_required: set[str] | None = None, bearer: bool = False, public: list[str] | None = None,
        title_suffix: str = " (subset)") -> dict[str, Any]:
    """The subset document (the input is not modified)."""
    rxs = [re.compile(p) for p in patterns]
    public_rxs = [re.compile(p) for p in public or []]
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        if not any(rx.search(path) for rx in rxs):
            continue
        item = copy.deepcopy(item)
        if methods:
            item = {k: v for k, v in item.items() if k in methods or k in _PATH_ITEM_KEYS or k.startswith("x-")}
        if any(m in item for m in METHODS):
            paths[path] = item
    if not paths:
        raise CutError("no path matched: check the regexes")
    for (method, path), value in (examples or {}).items():
        if path not in paths:
            raise CutError(f"--example {method}:{path}: that path is not kept (or not in the spec)")
        _set_example(doc, paths[path], method, path, value)
    for pre in strip or []:
        for path in list(paths):
            alias = "/".join(s[len(pre):] if s.startswith(pre) else s for s in path.split("/"))
            if alias != path and alias not in paths and alias not in doc.get("paths", {}):
                paths[alias] = copy.deepcopy(paths[path])
    if prefix:
        paths = {prefix.rstrip("/") + p: v for p, v in paths.items()}

    components: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    todo = sorted(_refs(paths, set()))
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = _pointer(ref)
        if parts[0] != "components" or len(parts) < 3:
            raise CutError(f"unsupported $ref (only #/components/<section>/<name>[/...]): {ref}")
        section, name = parts[1], parts[2]
        node = _resolve(doc, "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts[:3]))
        if name not in components.get(section, {}):
            components.setdefault(section, {})[name] = copy.deepcopy(node)
            todo.extend(sorted(_refs(node, set()) - seen))

    out: dict[str, Any] = {"openapi": doc["openapi"], "info": dict(doc.get("info", {}))}
    out["info"]["title"] = str(out["info"].get("title", "")) + title_suffix
    for key in ("servers", "security"):
        if key in doc:
            out[key] = copy.deepcopy(doc[key])
    if "tags" in doc:
        used = {t for item in paths.values() for m in METHODS if isinstance(item.get(m), dict)
                for t in item[m].get("tags", [])}
        out["tags"] = [t for t in doc["tags"] if isinstance(t, dict) and t.get("name") in used]
    out["paths"] = paths
    schemes = doc.get("components", {}).get("securitySchemes")
    if schemes and not bearer:
        components["securitySchemes"] = copy.deepcopy(schemes)
    if bearer:
        components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
        out["security"] = [{"bearer": []}]
        for path, item in paths.items():
            for m in METHODS:
                if isinstance(item.get(m), dict):
                    item[m].pop("security", None)
                    if any(rx.search(path) for rx in public_rxs):
                        item[m]["security"] = []
    if components:
        out["components"] = {s: {k: components[s][k] for k in sorted(components[s])} for s in sorted(components)}
    if drop_required:
        _unrequire(out, drop_required)
    return out


def _example_arg(text: str) -> tuple[tuple[str, str], Any]:
    where, sep, file = text.partition("=")
    method, sep2, path = where.partition(":")
    if not sep or not sep2 or method.lower() not in METHODS or not path.startswith("/"):
        raise CutError(f"--example {text!r}: expected METHOD:PATH=FILE (e.g. get:/users=examples/users.json)")
    try:
        value = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CutError(f"--example {text!r}: cannot read JSON from {file}: {e}") from None
    return (method.lower(), path), value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cut.py", description=(__doc__ or "").split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("patterns", nargs="+", metavar="REGEX")
    ap.add_argument("--methods", action="append", default=[])
    ap.add_argument("--example", action="append", default=[])
    ap.add_argument("--strip", action="append", default=[])
    ap.add_argument("--prefix", default="")
    ap.add_argument("--drop-required", action="append", default=[])
    ap.add_argument("--bearer", action="store_true")
    ap.add_argument("--public", action="append", default=[])
    ap.add_argument("--title-suffix", default=" (subset)")
    args = ap.parse_args(argv)
    try:
        if args.public and not args.bearer:
            raise CutError("--public needs --bearer")
        methods = {m.strip().lower() for chunk in args.methods for m in chunk.split(",") if m.strip()}
        if methods - set(METHODS):
            raise CutError(f"--methods: unknown {sorted(methods - set(METHODS))}")
        examples = dict(_example_arg(e) for e in args.example)
        with args.spec.open("rb") as fh:
            doc = json.load(fh)
        out = cut(doc, args.patterns, methods=methods or None, examples=examples, strip=args.strip,
                  prefix=args.prefix, drop_required=set(args.drop_required), bearer=args.bearer,
                  public=args.public, title_suffix=args.title_suffix)
    except CutError as e:
        print(f"cut.py: {e}", file=sys.stderr)
        return 2
    text = json.dumps(out, indent=1, ensure_ascii=True) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    n_ops = sum(1 for item in out["paths"].values() for m in METHODS if m in item)
    comps = ", ".join(f"{len(v)} {k}" for k, v in out.get("components", {}).items())
    print(f"{args.out}: {len(out['paths'])} paths, {n_ops} operations, {comps}; {len(text.encode())} bytes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
