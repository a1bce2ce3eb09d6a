"""Playbook files: YAML, validated on load; an error names the file, the step and the field.

    id: salesloft-drift-2025
    title: Third-party OAuth integration compromise
    incident: {name: "Salesloft Drift / UNC6395, Aug 2025", source: "incidents.md §1; GTIG; Unit 42"}
    inputs:
      seed: {description: the integration, as client:<issuer>:<client_id> or app:<name>, required: true}
    steps:
      - {id: scope, kind: manual, text: "Pull the IdP and SaaS logs for the window; run stanch findings."}
      - {id: tokens, kind: select, from: revocation_set, seed: "{seed}"}
      - {id: revoke, kind: act, items: tokens}              # each item's own verb, from the revocation set
      - {id: sessions, kind: act, items: tokens, verb: clear-user-sessions, connector: okta, target: "{principal}"}
      - {id: prove, kind: probe, items: revoke}
      - {id: report, kind: export, format: plan-json, path: "{case}.plan-{plan}.json"}

Step kinds: `select` (`from: revocation_set` with `seed`; `from: credentials` with `where`; `from: sql` with a
`query` returning credential ids), `act` (over a selection's items: their own verb, or `verb` + `connector`
kind + a `target` template over the item's fields), `probe` (prove an act step's items), `manual` (a checklist
item the responder ticks with a note), `export` (write the plan's record). `{name}` in strings is an input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILTIN_DIR = Path(__file__).parent / "builtin"
STEP_KINDS = ("select", "act", "probe", "manual", "export")
SELECT_FROM = ("revocation_set", "credentials", "sql")
EXPORT_FORMATS = ("plan-json",)
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_FIELDS = {
    "select": {"id", "kind", "title", "from", "seed", "where", "query", "depth"},
    "act": {"id", "kind", "title", "items", "verb", "connector", "target", "where"},
    "probe": {"id", "kind", "title", "items"},
    "manual": {"id", "kind", "title", "text"},
    "export": {"id", "kind", "title", "format", "path"},
}


class PlaybookError(ValueError):
    """A playbook that cannot be used: the message names the file, the step and the field."""


@dataclass(slots=True)
class Step:
    id: str
    kind: str
    title: str
    spec: dict[str, Any]


@dataclass(slots=True)
class Playbook:
    id: str
    title: str
    incident: dict[str, str]
    inputs: dict[str, dict[str, Any]]
    steps: list[Step]
    file: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "incident": self.incident, "inputs": self.inputs,
                "steps": [{"id": s.id, "kind": s.kind, "title": s.title, **s.spec} for s in self.steps],
                "file": self.file, "description": self.description}


def load_all(dirs: list[str | Path] | tuple[str | Path, ...] = ()) -> dict[str, Playbook]:
    """Built-in playbooks and those in `dirs`; a user playbook may not reuse a built-in id."""
    out: dict[str, Playbook] = {}
    for d in [BUILTIN_DIR, *(Path(x) for x in dirs)]:
        if not d.is_dir():
            raise PlaybookError(f"--playbooks {d}: not a folder of playbook files (*.yaml)")
        for f in sorted(d.glob("*.y*ml")):
            pb = load_file(f)
            if pb.id in out:
                raise PlaybookError(f"{f}: playbook id {pb.id} is already used by {out[pb.id].file}")
            out[pb.id] = pb
    return out


def load_file(f: Path) -> Playbook:
    try:
        d = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise PlaybookError(f"{f}{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the file") from None
    if not isinstance(d, dict):
        raise PlaybookError(f"{f}: expected a mapping with id, title, incident, inputs, steps")
    for name in ("id", "title"):
        if not isinstance(d.get(name), str) or not d[name].strip():
            raise PlaybookError(f"{f}: field {name}: required, a non-empty string")
    if not _ID.fullmatch(d["id"]):
        raise PlaybookError(f"{f}: field id: {d['id']!r}: lower-case letters, digits, '-', '_', '.'")
    incident = d.get("incident")
    if not isinstance(incident, dict) or not incident.get("name") or not incident.get("source"):
        raise PlaybookError(f"{f}: field incident: needs name and source (the incident it is modeled on)")
    inputs = d.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
        raise PlaybookError(f"{f}: field inputs: a mapping of name -> {{description, required, default}}")
    steps_raw = d.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise PlaybookError(f"{f}: field steps: a non-empty list")
    steps: list[Step] = []
    seen: dict[str, str] = {}
    for n, s in enumerate(steps_raw, 1):
        steps.append(_step(f, n, s, seen, set(inputs)))
    return Playbook(d["id"], d["title"], {k: str(v) for k, v in incident.items()}, inputs, steps, str(f),
                    str(d.get("description") or ""))


def _step(f: Path, n: int, s: Any, seen: dict[str, str], inputs: set[str]) -> Step:
    if not isinstance(s, dict):
        raise PlaybookError(f"{f}: step {n}: a mapping with id and kind")
    sid = s.get("id")
    if not isinstance(sid, str) or not _ID.fullmatch(sid):
        raise PlaybookError(f"{f}: step {n}: field id: required, lower-case letters, digits, '-', '_'")
    where = f"{f}: step {sid}"
    if sid in seen:
        raise PlaybookError(f"{where}: field id: used twice")
    kind = s.get("kind")
    if kind not in STEP_KINDS:
        raise PlaybookError(f"{where}: field kind: one of {', '.join(STEP_KINDS)}; got {kind!r}")
    unknown = set(s) - _FIELDS[kind]
    if unknown:
        raise PlaybookError(f"{where}: field {sorted(unknown)[0]}: a {kind} step takes "
                            f"{', '.join(sorted(_FIELDS[kind] - {'id', 'kind'}))}")
    if kind == "select":
        src = s.get("from")
        if src not in SELECT_FROM:
            raise PlaybookError(f"{where}: field from: one of {', '.join(SELECT_FROM)}")
        if src == "revocation_set" and not s.get("seed"):
            raise PlaybookError(f"{where}: field seed: a revocation_set selection needs a seed (e.g. \"{{seed}}\")")
        if src == "sql" and not isinstance(s.get("query"), str):
            raise PlaybookError(f"{where}: field query: a SELECT returning credential ids")
        if "where" in s and not isinstance(s["where"], dict):
            raise PlaybookError(f"{where}: field where: a mapping of field -> value or list of values")
    if kind in ("act", "probe"):
        ref = s.get("items")
        want = "select" if kind == "act" else "act"
        if not isinstance(ref, str) or seen.get(ref) != want:
            raise PlaybookError(f"{where}: field items: must name an earlier {want} step; got {ref!r}")
        if kind == "act" and "verb" in s and not s.get("connector"):
            raise PlaybookError(f"{where}: field connector: an explicit verb needs the connector kind it runs on")
    if kind == "manual" and not (isinstance(s.get("text"), str) and s["text"].strip()):
        raise PlaybookError(f"{where}: field text: what the responder must do, and how to tell it is done")
    if kind == "export" and s.get("format") not in EXPORT_FORMATS:
        raise PlaybookError(f"{where}: field format: one of {', '.join(EXPORT_FORMATS)}")
    for key, value in s.items():
        if isinstance(value, str):
            for name in re.findall(r"\{([a-z_]+)\}", value):
                if name not in inputs and name not in _ITEM_FIELDS and name not in ("case", "plan"):
                    raise PlaybookError(f"{where}: field {key}: {{{name}}} is not an input of this playbook")
    seen[sid] = kind
    spec = {k: v for k, v in s.items() if k not in ("id", "kind", "title")}
    return Step(sid, kind, str(s.get("title") or sid), spec)


# Fields of a selected item a target template may use.
_ITEM_FIELDS = ("principal", "client", "credential", "kind", "preview", "target", "issuer")


def fill(text: str, values: dict[str, Any]) -> str:
    """`{name}` replaced by values[name] (missing names stay as they are)."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: str(values.get(m.group(1), m.group(0))), text)
