"""Playbook plans in the case: the approved list of items, their states, and the write-ahead journal.

Vendor-free storage for `playbooks/`: a plan is stored once with its hash (`create`); a person approves that
hash (`approve`); every change of an item's state is a journal row written in its own committed transaction
(`record`) — `intent` before a remote call, `result` after, `probe`, `manual`, `resume` — so a crash at any
point leaves on disk the last state of every item. Plans and journal rows are audited like notes; item rows
hold the current state (derived from the journal) for quick reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from casefile import audit
from casefile.case import Case, CaseError
from casefile.timeutil import now_iso

#: Item states. `in-flight`: the intent is journaled and the call may have reached the vendor.
STATES = ("pending", "in-flight", "done", "failed", "waiting", "verified", "blocked", "skipped")
ITEM_COLUMNS = ("seq", "step", "kind", "connector", "connector_kind", "verb", "target", "preview", "credential_id",
                "secret_key", "needs_raw", "reversible", "rotation", "undo", "text", "idempotency_key", "state",
                "attempts", "verdict", "evidence", "note", "updated_at")
# What an approver approves: everything that says what will be done to what (not states or results).
HASHED = ("seq", "step", "kind", "connector", "connector_kind", "verb", "target", "credential_id", "secret_key",
          "needs_raw", "reversible", "rotation", "undo", "text", "idempotency_key")


@dataclass(slots=True)
class Item:
    seq: int
    step: str
    kind: str  # act | probe | manual | export
    connector: str | None = None  # the configured connector's name
    connector_kind: str | None = None
    verb: str | None = None
    target: str | None = None  # an id, never a raw secret
    preview: str | None = None
    credential_id: int | None = None
    secret_key: str | None = None  # the `sha256:` key of the raw credential the verb needs
    needs_raw: bool = False
    reversible: bool = False
    rotation: bool = False
    undo: str | None = None
    text: str | None = None  # a manual item's instruction; an export's format and path
    idempotency_key: str = ""
    state: str = "pending"
    attempts: int = 0
    verdict: str | None = None
    evidence: str | None = None
    note: str | None = None
    updated_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Plan:
    id: int
    playbook: str
    title: str
    created_at: str
    created_by: str
    inputs: dict[str, Any]
    hash: str
    body: dict[str, Any]
    approved_by: str | None
    approved_at: str | None
    approved_hash: str | None
    items: list[Item] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_hash(playbook: str, inputs: dict[str, Any], items: list[Item]) -> str:
    doc = [playbook, inputs, [[getattr(i, c) for c in HASHED] for i in sorted(items, key=lambda i: i.seq)]]
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create(case: Case, playbook: str, title: str, inputs: dict[str, Any], items: list[Item],
           body: dict[str, Any]) -> int:
    """Store a plan and its items (audited); returns its id. Touches nothing remote."""
    h = plan_hash(playbook, inputs, items)
    with case.transaction() as c:
        seq, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(id), 0) FROM plans").fetchone()[0]
        pid = before + 1
        values = (pid, playbook, title, now_iso(), case.analyst, orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)
                  .decode(), h, orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode(), seq)
        c.execute("INSERT INTO plans(id, playbook, title, created_at, created_by, inputs, hash, body, audit_seq,"
                  " row_hash) VALUES (?,?,?,?,?,?,?,?,?,?)", (*values, audit.row_hash(values)))
        c.executemany(f"INSERT INTO plan_items(plan_id, {', '.join(ITEM_COLUMNS)}) VALUES"
                      f" (?, {', '.join('?' * len(ITEM_COLUMNS))})",
                      [(pid, *(getattr(i, col) for col in ITEM_COLUMNS)) for i in items])
        audit.record_rows(c, "plans", before, seq, case.analyst, "plan.create",
                          {"plan": pid, "playbook": playbook, "items": len(items), "hash": h})
    return int(pid)


def load(case: Case, plan_id: int) -> Plan:
    row = case.conn.execute("SELECT id, playbook, title, created_at, created_by, inputs, hash, body, approved_by,"
                            " approved_at, approved_hash FROM plans WHERE id = ?", (plan_id,)).fetchone()
    if row is None:
        raise CaseError(f"plan {plan_id}: no such plan in {case.path}; `stanch play status {case.path}` lists them")
    plan = Plan(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]), row[6], orjson.loads(row[7]), row[8],
                row[9], row[10])
    for r in case.conn.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM plan_items WHERE plan_id = ? ORDER BY seq",
                               (plan_id,)):
        d = dict(zip(ITEM_COLUMNS, r, strict=True))
        for b in ("needs_raw", "reversible", "rotation"):
            d[b] = bool(d[b])
        plan.items.append(Item(**d))
    return plan


def plans(case: Case) -> list[dict[str, Any]]:
    out = []
    for pid, playbook, title, created, approved_by, h, ah in case.conn.execute(
            "SELECT id, playbook, title, created_at, approved_by, hash, approved_hash FROM plans ORDER BY id"):
        states = dict(case.conn.execute("SELECT state, count(*) FROM plan_items WHERE plan_id = ? GROUP BY state",
                                        (pid,)).fetchall())
        out.append({"plan": pid, "playbook": playbook, "title": title, "created_at": created,
                    "approved_by": approved_by, "approved": ah is not None and ah == h, "states": states})
    return out


def approve(case: Case, plan_id: int, approver: str, expected_hash: str | None = None) -> str:
    """Bind `approver` and now to the plan's current hash (audited). Returns the hash approved."""
    if not approver or not approver.strip():
        raise CaseError("approve: name the approver (--as NAME)")
    plan = load(case, plan_id)
    current = plan_hash(plan.playbook, plan.inputs, plan.items)
    if current != plan.hash:
        raise CaseError(f"plan {plan_id}: its items no longer match the hash it was created with; plan it again")
    if expected_hash is not None and expected_hash != current:
        raise CaseError(f"plan {plan_id}: hash {current[:12]} is not the {expected_hash[:12]} you reviewed; review "
                        "it again")
    with case.transaction() as c:
        c.execute("UPDATE plans SET approved_by = ?, approved_at = ?, approved_hash = ? WHERE id = ?",
                  (approver.strip(), now_iso(), current, plan_id))
        audit.append(c, case.analyst, "plan.approve", {"plan": plan_id, "approver": approver.strip(),
                                                       "hash": current})
    return current


def check_approved(case: Case, plan: Plan) -> None:
    """Raise unless the plan is approved and unchanged since its approval."""
    if not plan.approved_hash:
        raise CaseError(f"plan {plan.id} is not approved; review it (`stanch play status {case.path} {plan.id}`) and"
                        f" approve it (`stanch play approve {case.path} {plan.id} --as NAME`)")
    current = plan_hash(plan.playbook, plan.inputs, plan.items)
    audited = case.conn.execute(
        "SELECT details FROM audit WHERE operation = 'plan.approve' ORDER BY seq DESC").fetchall()
    approved_in_audit = any(orjson.loads(d[0]).get("plan") == plan.id and orjson.loads(d[0]).get("hash") == current
                            for d in audited if d[0])
    if current != plan.approved_hash or current != plan.hash or not approved_in_audit:
        raise CaseError(f"plan {plan.id} changed since it was approved (hash {current[:12]}, approved "
                        f"{plan.approved_hash[:12]}); plan and approve it again")


def record(case: Case, plan_id: int, seq: int, phase: str, state: str, detail: dict[str, Any] | None = None,
           **updates: Any) -> None:
    """Journal one state change of an item and apply it, in one committed transaction (the write-ahead rule:
    call this with phase `intent` before the remote call, and with `result` after)."""
    if state not in STATES:
        raise ValueError(f"unknown item state {state!r}")
    now = now_iso()
    with case.transaction() as c:
        seq_a, _ = audit.next_seq(c)
        before = c.execute("SELECT coalesce(max(rowid), 0) FROM journal").fetchone()[0]
        values = (before + 1, plan_id, seq, now, case.analyst, phase, state,
                  orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode(), seq_a)
        c.execute("INSERT INTO journal(rowid, plan_id, seq, time, who, phase, state, detail, audit_seq, row_hash)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?)", (*values, audit.row_hash(values)))
        sets = ["state = ?", "updated_at = ?"]
        args: list[Any] = [state, now]
        if phase == "intent":
            sets.append("attempts = attempts + 1")
        for k, v in updates.items():
            if k not in ("verdict", "evidence", "note", "undo"):
                raise ValueError(f"cannot update item field {k}")
            sets.append(f"{k} = ?")
            args.append(v)
        c.execute(f"UPDATE plan_items SET {', '.join(sets)} WHERE plan_id = ? AND seq = ?", (*args, plan_id, seq))
        audit.record_rows(c, "journal", before, seq_a, case.analyst, f"journal.{phase}",
                          {"plan": plan_id, "item": seq, "state": state})


def journal(case: Case, plan_id: int, seq: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT seq, time, who, phase, state, detail FROM journal WHERE plan_id = ?"
    args: list[Any] = [plan_id]
    if seq is not None:
        sql += " AND seq = ?"
        args.append(seq)
    return [{"item": r[0], "time": r[1], "who": r[2], "phase": r[3], "state": r[4], "detail": orjson.loads(r[5] or "{}")}
            for r in case.conn.execute(sql + " ORDER BY rowid", args)]
