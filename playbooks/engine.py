"""The playbook engine: plan → approve → apply (write-ahead journal, resumable) → verify (a probe per item).

- `make_plan` expands every step of a playbook into concrete items (the revocation set's credentials with the
  connector, verb and target that can kill each, manual checklist items, exports) and stores the plan with
  its hash. Nothing remote is touched.
- `casefile.plans.approve` binds a named approver to that hash; `apply` refuses a plan that changed since.
- `apply` runs the act items with a per-connector concurrency limit and request spacing. Each item's state
  moves through the journal: `intent` (committed before the call), then `result`. Items that need the raw
  credential get it from the responder at apply time (matched by its `sha256:` key, never stored); apply
  refuses to start while any such item has no value. Transient failures are retried within limits (after the
  server's `Retry-After`, when it gave one), then the item is left `failed`, visible. An item that was sent before
  (a retry, a failed or re-opened item) is probed first and, when proven dead, not sent again: its answer may have
  been lost after it landed. Manual items wait for the responder (`tick`).
- After a crash or `kill -9`, `apply` resumes: every item left `in-flight` is probed first; proven dead → done
  without resending; otherwise it is sent again — except a rotation, which is never sent twice (it is left
  failed for a person to check). A done item is never repeated.
- `verify` probes every done item (ARCHITECTURE §4 verdicts): `revoked-verified` (or `unrevocable`, with its
  expiry) marks it verified; any other verdict re-opens it, except that a verified item is re-opened only by
  positive evidence of life (`still-live`): an inconclusive probe (a timeout, a 5xx) leaves the proof standing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import connectors  # noqa: F401  (registers every vendor's verbs, revokers and parsers)
from casefile import live, plans
from casefile.blast import blast, revoke_how
from casefile.case import Case, CaseError
from casefile.plans import Item
from casefile.secrets import fingerprint
from connectors import config, verbs
from connectors.http import ConnectorError, ConnectorTimeoutError, RateLimitedError, ServerError
from connectors.verdict import REVOKED_VERIFIED, STILL_LIVE, UNREVOCABLE
from playbooks.model import Playbook, Step, fill

#: Verdicts that end an item: proven dead, or nothing can revoke it (it lives until its expiry).
FINAL_VERDICTS = (REVOKED_VERIFIED, UNREVOCABLE)
TRANSIENT = (RateLimitedError, ServerError, ConnectorTimeoutError)


class ApplyError(CaseError):
    """Apply cannot start or continue: the message says what to do."""


# ------------------------------------------------------------------------------------------------- plan


def make_plan(case: Case, playbook: Playbook, inputs: dict[str, str],
              connectors_by_name: dict[str, config.ConnectorSettings] | None = None,
              exclude: Iterable[str] = ()) -> int:
    """Expand `playbook` into items and store the plan (returns its id). Raises CaseError for a missing input.
    `exclude`: targets or credential keys the responder deselected; selected items matching one are left out
    of the plan, and the plan records what was left out (so its hash, and the approval, cover the choice)."""
    excluded = {e for e in exclude if e}
    values = dict(inputs)
    for name, spec in playbook.inputs.items():
        if name not in values:
            if "default" in spec:
                values[name] = str(spec["default"])
            elif spec.get("required"):
                raise CaseError(f"playbook {playbook.id}: input {name} is required ({spec.get('description', '')});"
                                f" pass --input {name}=VALUE")
    configured = connectors_by_name if connectors_by_name is not None else _configured()
    selections: dict[str, list[dict[str, Any]]] = {}
    acts: dict[str, list[Item]] = {}
    items: list[Item] = []
    seen: set[tuple[Any, ...]] = set()
    body_steps = []
    for step in playbook.steps:
        made: list[Item] = []
        if step.kind == "select":
            chosen = _select(case, step, values)
            if excluded:
                chosen = [sel for sel in chosen if not _deselected(sel, excluded)]
            selections[step.id] = chosen
            body_steps.append({"id": step.id, "kind": "select", "title": step.title,
                               "selected": len(selections[step.id])})
            continue
        if step.kind == "act":
            for sel in _filter(selections[step.spec["items"]], step.spec.get("where")):
                item = _act_item(step, sel, values, configured, len(items) + len(made) + 1, playbook.id)
                key = (item.connector_kind, item.verb, item.target, item.text)
                if key in seen:
                    continue
                seen.add(key)
                made.append(item)
            acts[step.id] = made
        elif step.kind == "probe":
            for twin in acts[step.spec["items"]]:
                if twin.kind != "act":
                    continue
                made.append(Item(len(items) + len(made) + 1, step.id, "probe", twin.connector, twin.connector_kind,
                                 twin.verb, twin.target, twin.preview, twin.credential_id, twin.secret_key,
                                 twin.needs_raw, idempotency_key=_idem(playbook.id, step.id, "probe", twin.verb,
                                                                       twin.target)))
        elif step.kind == "manual":
            text = fill(step.spec["text"], values)
            made.append(Item(len(items) + 1, step.id, "manual", text=text,
                             idempotency_key=_idem(playbook.id, step.id, "manual", None, text)))
        elif step.kind == "export":
            text = f"{step.spec['format']} {fill(step.spec.get('path') or '{case}.plan-{plan}.json', values)}"
            made.append(Item(len(items) + 1, step.id, "export", text=text,
                             idempotency_key=_idem(playbook.id, step.id, "export", None, text)))
        items += made
        body_steps.append({"id": step.id, "kind": step.kind, "title": step.title, "items": len(made)})
    body: dict[str, Any] = {"playbook": playbook.summary(), "steps": body_steps}
    if excluded:
        body["excluded"] = sorted(excluded)
    return plans.create(case, playbook.id, playbook.title, values, items, body)


def _configured() -> dict[str, config.ConnectorSettings]:
    try:
        return config.load_all()
    except config.ConfigError:
        return {}


def _select(case: Case, step: Step, values: dict[str, str]) -> list[dict[str, Any]]:
    src = step.spec["from"]
    if src == "revocation_set":
        seed = fill(str(step.spec["seed"]), values)
        doc = blast(case, seed, depth=int(step.spec.get("depth", 3)), as_of=values.get("as_of") or None)
        return [i for i in doc["revocation_set"]["items"] if i["kind"] != "app"]
    if src == "credentials":
        where = {k: v for k, v in (step.spec.get("where") or {}).items()}
        rows = _credential_items(case, "1", [])
        return _filter(rows, {k: fill(v, values) if isinstance(v, str) else v for k, v in where.items()})
    query = fill(str(step.spec["query"]), values)
    # A playbook's SQL runs on a read-only connection: a selection can read the case, never change it.
    ro = sqlite3.connect(f"file:{case.path}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in ro.execute(query)]
    except sqlite3.Error as e:  # name the step, never crash
        raise CaseError(f"step {step.id}: field query: {e}") from None
    finally:
        ro.close()
    if not ids:
        return []
    return _credential_items(case, f"id IN ({','.join('?' * len(ids))})", ids)


def _credential_items(case: Case, where: str, args: list[Any]) -> list[dict[str, Any]]:
    cols = ("id", "kind", "issuer", "client", "principal", "preview", "status", "expires_at")
    out = []
    for r in case.conn.execute(f"SELECT {', '.join(cols)} FROM credentials WHERE {where} ORDER BY id", args):
        d = dict(zip(cols, r, strict=True))
        d["keys"] = [k for (k,) in case.conn.execute("SELECT key FROM credential_keys WHERE credential_id = ?"
                                                      " ORDER BY key", (d["id"],))]
        how = revoke_how(d)
        out.append({"credentials": [d["id"]], "kind": d["kind"], "role": "selected", "preview": d["preview"],
                    "keys": d["keys"],
                    "client": d["client"], "principal": d["principal"], "issuer": d["issuer"],
                    "status": d["status"], "reason": "selected by the playbook",
                    "connector": how.connector if how else None, "verb": how.verb if how else None,
                    "target": how.target if how else None, "needs_raw_secret": how.needs_raw_secret if how else True,
                    "reversible": how.reversible if how else False, "note": how.note if how else ""})
    return out


def _filter(items: list[dict[str, Any]], where: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not where:
        return items
    out = []
    for it in items:
        ok = True
        for k, want in where.items():
            have = it.get(k)
            allowed = want if isinstance(want, list) else [want]
            if have not in allowed:
                ok = False
                break
        if ok:
            out.append(it)
    return out


def _idem(playbook: str, step: str, kind: str, verb: str | None, target: str | None) -> str:
    return hashlib.sha256(f"{playbook}|{step}|{kind}|{verb}|{target}".encode()).hexdigest()[:24]


def _deselected(sel: dict[str, Any], excluded: set[str]) -> bool:
    names = {sel.get("target"), *(sel.get("keys") or []), *(str(c) for c in sel.get("credentials") or [])}
    return bool(names & excluded)


def _act_item(step: Step, sel: dict[str, Any], values: dict[str, str],
              configured: dict[str, config.ConnectorSettings], seq: int, playbook: str) -> Item:
    kind = step.spec.get("connector") or sel.get("connector")
    verb_name = step.spec.get("verb") or sel.get("verb")
    fields = {**values, "principal": sel.get("principal") or "", "client": sel.get("client") or "",
              "kind": sel.get("kind") or "", "preview": sel.get("preview") or "", "target": sel.get("target") or "",
              "issuer": sel.get("issuer") or "",
              "credential": str((sel.get("credentials") or [""])[0])}
    target = fill(step.spec["target"], fields) if step.spec.get("target") else sel.get("target")
    cred = (sel.get("credentials") or [None])[0]
    preview = sel.get("preview") or next(iter(sel.get("keys") or []), None)
    if step.spec.get("target") and kind and verb_name and not (target or "").strip():
        text = (f"{kind} {verb_name} for {sel.get('kind')} {preview}: the target {step.spec['target']!r} filled to "
                "nothing; give the input it names and plan again, or do it by hand")
        return Item(seq, step.id, "manual", preview=preview, credential_id=cred, text=text,
                    idempotency_key=_idem(playbook, step.id, "manual", verb_name, text))
    if not kind or not verb_name or not target:
        text = (f"revoke {sel.get('kind')} {preview} by hand at its issuer: no connector can act on it "
                f"({sel.get('note') or sel.get('reason')})")
        return Item(seq, step.id, "manual", preview=preview, credential_id=cred, text=text,
                    idempotency_key=_idem(playbook, step.id, "manual", None, text))
    verb = verbs.get(kind, verb_name)
    needs_raw = bool(verb.needs_raw if verb else sel.get("needs_raw_secret"))
    secret_key = None
    if needs_raw:
        keys = sel.get("keys") or []
        secret_key = next((k for k in keys if k.startswith("sha256:")), None) or next(
            (k for k in keys if k.startswith("sha256/16:")), None)
    name = values.get(f"connector.{kind}") or _only(configured, kind)
    item = Item(seq, step.id, "act", name, kind, verb_name, target, preview, cred, secret_key, needs_raw,
                bool(verb.reversible) if verb else bool(sel.get("reversible")), bool(verb.rotation) if verb else False,
                verb.undo if verb else None, idempotency_key=_idem(playbook, step.id, "act", verb_name, target))
    if verb is None:
        item.state, item.note = "blocked", f"no connector verb {kind} {verb_name} is registered"
    elif needs_raw and not secret_key:
        item.state, item.note = "blocked", (f"{kind} {verb_name} needs the raw credential, and the case knows no "
                                            "sha256 key to match it by: fingerprint it (`stanch fingerprint`) into "
                                            "the case, or use a verb keyed by id (e.g. a Vault accessor from "
                                            "`stanch pull` of the token inventory)")
    elif name is None:
        item.state, item.note = "blocked", (f"no {kind} connector configured: `stanch connector add NAME --kind {kind}`"
                                            f" then plan again, or pass --input connector.{kind}=NAME")
    return item


def _only(configured: dict[str, config.ConnectorSettings], kind: str) -> str | None:
    names = [n for n, s in configured.items() if s.kind == kind]
    return names[0] if len(names) == 1 else None


# ------------------------------------------------------------------------------------------------ secrets


def read_secrets(lines: Iterable[str]) -> dict[str, str]:
    """Raw credentials, one per line, keyed by every key they fingerprint to (`sha256:`, `sha256/16:`).
    Held in memory for this run only."""
    out: dict[str, str] = {}
    for line in lines:
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        for key in fingerprint(raw).keys:
            out[key] = raw
    return out


# ------------------------------------------------------------------------------------------------ apply


@dataclass(slots=True)
class RunOptions:
    concurrency: int | None = None  # per connector; None: the connector's own setting
    max_retries: int = 2  # engine-level retries of a transient failure (the HTTP client retries too)
    max_wait_s: float = 120.0  # longest server-requested wait (Retry-After) sat out before a retry; longer fails
    verify: bool = True
    read_only: bool = False
    settings: dict[str, config.ConnectorSettings] | None = None  # tests inject; else the user's config
    connector_secrets: dict[str, str] | None = None  # tests inject; else the keyring
    progress: Callable[[dict[str, int]], None] | None = None
    sleep: Callable[[float], Any] = asyncio.sleep
    counts: dict[str, int] = field(default_factory=dict)


def apply(case: Case, plan_id: int, secrets: dict[str, str] | None = None,
          options: RunOptions | None = None) -> dict[str, Any]:
    """Run an approved plan (resuming one that was interrupted); then verify it. Returns `status`."""
    opts = options or RunOptions()
    if opts.read_only or case.policy().get("read_only"):
        raise ApplyError(f"{case.path} is read-only (policy read_only or --read-only): apply refused")
    plan = plans.load(case, plan_id)
    plans.check_approved(case, plan)
    secrets = secrets or {}
    acts = [i for i in plan.items if i.kind == "act" and i.state in ("pending", "in-flight", "failed")]
    missing = [i for i in acts if i.needs_raw and not (i.secret_key and secrets.get(i.secret_key))]
    if missing:
        shown = ", ".join(f"{i.seq} ({i.preview or i.secret_key})" for i in missing[:10])
        raise ApplyError(f"plan {plan_id}: {len(missing)} item(s) need the raw credential and none was given: {shown};"
                         " pass them with --secrets-from FILE (one per line; matched by their sha256 key, never "
                         "stored)")
    env = _Env(case, plan, secrets, opts)
    asyncio.run(env.run(acts))
    if opts.verify:
        verify(case, plan_id, secrets, opts)
    return status(case, plan_id)


class _Env:
    """One apply run: connector settings and secrets, per-connector semaphores and spacing."""

    def __init__(self, case: Case, plan: plans.Plan, secrets: dict[str, str], opts: RunOptions) -> None:
        self.case, self.plan, self.secrets, self.opts = case, plan, secrets, opts
        self.settings = opts.settings if opts.settings is not None else _configured()
        self._secret_cache: dict[str, str] = dict(opts.connector_secrets or {})
        self.sems: dict[str, asyncio.Semaphore] = {}
        self.next_slot: dict[str, float] = {}
        self.rng = random.Random()  # noqa: S311  (backoff jitter)
        self.probed: set[int] = set()  # items whose resume probe ran in this run (not probed again before sending)

    def connector(self, name: str) -> tuple[config.ConnectorSettings, str]:
        s = self.settings.get(name)
        if s is None:
            raise ApplyError(f"connector {name} is not configured here; `stanch connector add {name} …`")
        if name not in self._secret_cache:
            self._secret_cache[name] = config.secret_for(name, settings=s)
        return s, self._secret_cache[name]

    def sem(self, name: str) -> asyncio.Semaphore:
        if name not in self.sems:
            s = self.settings[name]
            self.sems[name] = asyncio.Semaphore(self.opts.concurrency or s.concurrency)
        return self.sems[name]

    async def space(self, name: str) -> None:
        rate = self.settings[name].rate_limit
        if not rate:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot.get(name, 0.0))
        self.next_slot[name] = slot + 1.0 / rate
        if slot > now:
            await self.opts.sleep(slot - now)

    def tick(self) -> None:
        if self.opts.progress:
            self.opts.progress(dict(self.case.conn.execute(
                "SELECT state, count(*) FROM plan_items WHERE plan_id = ? GROUP BY state", (self.plan.id,)).fetchall()))

    async def run(self, acts: list[Item]) -> None:
        # Resume: what was in flight at a crash is probed before anything is sent again.
        for item in [i for i in acts if i.state == "in-flight"]:
            await self.resume(item)
        # Failed items are tried again, except a rotation (replacing a secret twice is never automatic).
        todo = [i for i in acts if i.connector and (i.state == "pending" or (i.state == "failed" and not i.rotation))]
        for item in [i for i in self.plan.items if i.kind == "manual" and i.state == "pending"]:
            plans.record(self.case, self.plan.id, item.seq, "manual", "waiting", {"text": item.text})
            item.state = "waiting"
        # Steps run in their playbook order (a step's items concurrently): "issue replacements, then revoke".
        for step in dict.fromkeys(i.step for i in sorted(todo, key=lambda i: i.seq)):
            await asyncio.gather(*(self.act(i) for i in todo if i.step == step))
        for item in [i for i in self.plan.items if i.kind == "export" and i.state in ("pending", "failed")]:
            self.export(item)
        self.tick()

    async def resume(self, item: Item) -> None:
        verb = verbs.get(item.connector_kind or "", item.verb or "")
        if verb is None or item.connector is None:
            plans.record(self.case, self.plan.id, item.seq, "resume", "failed", {"why": "verb or connector gone"})
            item.state = "failed"
            return
        settings, secret = self.connector(item.connector)
        raw = self.secrets.get(item.secret_key or "")
        verdict = await verbs.probe(verb, settings, secret, item.target or "", raw=raw)
        self.probed.add(item.seq)
        detail = {"verdict": verdict.status, "evidence": verdict.evidence, "why": "in flight at an interruption"}
        if verdict.status in FINAL_VERDICTS:
            plans.record(self.case, self.plan.id, item.seq, "resume", "done", detail, verdict=verdict.status,
                         evidence=verdict.evidence)
            item.state = "done"
        elif verb.rotation:
            plans.record(self.case, self.plan.id, item.seq, "resume", "failed",
                         {**detail, "why": "a rotation in flight at an interruption is never sent twice: check it "
                                           "by hand"}, note="rotation not resent after an interruption")
            item.state = "failed"
        else:
            plans.record(self.case, self.plan.id, item.seq, "resume", "pending", detail)
            item.state = "pending"

    async def act(self, item: Item) -> None:
        assert item.connector is not None
        verb = verbs.get(item.connector_kind or "", item.verb or "")
        if verb is None:
            plans.record(self.case, self.plan.id, item.seq, "result", "blocked", {"why": "verb not registered"})
            return
        settings, secret = self.connector(item.connector)
        raw = self.secrets.get(item.secret_key or "")

        def snapshot(what: str, target: str, body: Any) -> None:
            live.store_snapshot(self.case, item.connector or "", what, target, body)

        attempt = 0
        async with self.sem(item.connector):
            while True:
                attempt += 1
                await self.space(item.connector)
                # Sent before (a retry, or a failed or re-opened item): the act may have landed and only its answer
                # been lost (a timeout, a reset, a 502 from a proxy). Probe before sending it again.
                if ((attempt > 1 or item.attempts > 0) and item.seq not in self.probed
                        and await self.proven_dead(item, verb, settings, secret, raw)):
                    break
                self.probed.discard(item.seq)
                plans.record(self.case, self.plan.id, item.seq, "intent", "in-flight",
                             {"verb": item.verb, "target": item.target, "attempt": attempt,
                              "idempotency_key": item.idempotency_key})
                try:
                    result = await verbs.act(verb, settings, secret, item.target or "", raw=raw, snapshot=snapshot)
                except TRANSIENT as e:
                    wait = self.rng.uniform(0, min(30.0, 0.5 * 2 ** attempt))
                    if e.retry_at is not None:  # the server said when to come back (429/503 Retry-After)
                        wait = max(wait, e.retry_at - time.time())
                    if attempt <= self.opts.max_retries and wait <= self.opts.max_wait_s:
                        plans.record(self.case, self.plan.id, item.seq, "result", "pending",
                                     {"error": str(e), "retry": attempt})
                        await self.opts.sleep(wait)
                        continue
                    plans.record(self.case, self.plan.id, item.seq, "result", "failed", {"error": str(e)},
                                 note=str(e)[:300])
                    break
                except (ConnectorError, ValueError, CaseError, OSError) as e:
                    plans.record(self.case, self.plan.id, item.seq, "result", "failed", {"error": str(e)},
                                 note=str(e)[:300])
                    break
                plans.record(self.case, self.plan.id, item.seq, "result", "done", _json_ready(result),
                             undo=_undo(verb, item))
                break
        self.tick()

    async def proven_dead(self, item: Item, verb: verbs.Verb, settings: config.ConnectorSettings, secret: str,
                          raw: str | None) -> bool:
        """Probe an item about to be sent again; record it done (not resent) when the probe proves it dead."""
        try:
            verdict = await verbs.probe(verb, settings, secret, item.target or "", raw=raw)
        except (ConnectorError, ValueError, OSError):
            return False
        if verdict.status not in FINAL_VERDICTS:
            return False
        plans.record(self.case, self.plan.id, item.seq, "result", "done",
                     {"verdict": verdict.status, "evidence": verdict.evidence,
                      "why": "proven dead by a probe before sending it again"},
                     verdict=verdict.status, evidence=verdict.evidence, undo=_undo(verb, item))
        item.state = "done"
        return True

    def export(self, item: Item) -> None:
        fmt, _, path_text = (item.text or "").partition(" ")
        path = Path(fill(path_text, {"case": self.case.path, "plan": self.plan.id}))
        doc = status(self.case, self.plan.id)
        doc["journal"] = plans.journal(self.case, self.plan.id)
        try:
            path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        except OSError as e:
            plans.record(self.case, self.plan.id, item.seq, "result", "failed", {"error": str(e)}, note=str(e))
            return
        plans.record(self.case, self.plan.id, item.seq, "result", "done", {"format": fmt, "path": str(path)})


def _undo(verb: verbs.Verb, item: Item) -> str | None:
    """The journal's undo record for an item done by `verb`, when the verb can be undone."""
    if not (verb.reversible and verb.undo):
        return None
    return orjson.dumps({"verb": verb.undo, "connector": item.connector, "target": item.target}).decode()


def _json_ready(result: Any) -> dict[str, Any]:
    try:
        return orjson.loads(orjson.dumps(result, default=str)) if isinstance(result, dict) else {"result": str(result)}
    except (TypeError, orjson.JSONEncodeError):
        return {"result": str(result)[:500]}


# ------------------------------------------------------------------------------------------------ verify


def verify(case: Case, plan_id: int, secrets: dict[str, str] | None = None,
           options: RunOptions | None = None) -> dict[str, Any]:
    """Probe every done act item: a final verdict verifies it; any other verdict re-opens it, except that an item
    already verified is re-opened only by positive evidence of life (`still-live`), not by an inconclusive probe."""
    opts = options or RunOptions()
    plan = plans.load(case, plan_id)
    env = _Env(case, plan, secrets or {}, opts)
    todo = [i for i in plan.items if i.kind == "act" and i.state in ("done", "verified") and i.connector]

    async def run() -> None:
        async def one(item: Item) -> None:
            verb = verbs.get(item.connector_kind or "", item.verb or "")
            if verb is None or item.connector is None:
                return
            settings, secret = env.connector(item.connector)
            async with env.sem(item.connector):
                await env.space(item.connector)
                verdict = await verbs.probe(verb, settings, secret, item.target or "",
                                            raw=env.secrets.get(item.secret_key or ""))
            final = verdict.status in FINAL_VERDICTS
            if not final and item.state == "verified" and verdict.status != STILL_LIVE:
                # Proven dead before; an inconclusive probe (a timeout, a 5xx) is no evidence of life. The proof
                # stands (item, verdict and credential status unchanged); the journal keeps this probe.
                plans.record(case, plan_id, item.seq, "probe", "verified",
                             {"verdict": verdict.status, "evidence": verdict.evidence,
                              "why": "inconclusive probe of an item already verified: the earlier proof stands"})
                return
            plans.record(case, plan_id, item.seq, "probe", "verified" if final else "pending",
                         {"verdict": verdict.status, "evidence": verdict.evidence, "expires_at": verdict.expires_at},
                         verdict=verdict.status, evidence=verdict.evidence,
                         note=None if final else f"the probe said {verdict.status}: the item is open again")
            if item.credential_id is not None:
                case.conn.execute("UPDATE credentials SET status = ? WHERE id = ?", (verdict.status, item.credential_id))
            twins = [p for p in plan.items if p.kind == "probe" and p.verb == item.verb and p.target == item.target]
            for twin in twins:
                plans.record(case, plan_id, twin.seq, "probe", "verified" if final else "failed",
                             {"verdict": verdict.status, "of": item.seq}, verdict=verdict.status,
                             evidence=verdict.evidence)

        await asyncio.gather(*(one(i) for i in todo))

    asyncio.run(run())
    return status(case, plan_id)


# ------------------------------------------------------------------------------------------------ manual, status


def tick(case: Case, plan_id: int, seq: int, note: str) -> None:
    """The responder did a manual item: tick it with a note (what was done, where the proof is)."""
    plan = plans.load(case, plan_id)
    item = next((i for i in plan.items if i.seq == seq), None)
    if item is None or item.kind != "manual":
        raise CaseError(f"plan {plan_id}: item {seq} is not a manual item; `stanch play status` lists them")
    if not note.strip():
        raise CaseError("tick: say what was done (--note TEXT)")
    plans.record(case, plan_id, seq, "manual", "done", {"note": note}, note=note)


def status(case: Case, plan_id: int) -> dict[str, Any]:
    plan = plans.load(case, plan_id)
    by_connector: dict[str, dict[str, int]] = {}
    states: dict[str, int] = {}
    for i in plan.items:
        states[i.state] = states.get(i.state, 0) + 1
        if i.kind == "act":
            c = by_connector.setdefault(f"{i.connector_kind}:{i.connector or '-'}", {})
            c[i.state] = c.get(i.state, 0) + 1
    return {"plan": plan.id, "playbook": plan.playbook, "title": plan.title, "hash": plan.hash,
            "approved_by": plan.approved_by, "approved_at": plan.approved_at,
            "approved": plan.approved_hash == plan.hash, "states": states, "by_connector": by_connector,
            "items": [i.as_dict() for i in plan.items]}
