"""Regenerate the README's screenshots from the real console on the demo incident.

    .venv/bin/python screenshots/make.py [--events N] [--size COLSxROWS]

Builds the demo case (seed 7) in a temporary folder, runs the detection rules, then drives the console headless
(Textual's pilot) through the journeys and saves each view as SVG in this folder, and as PNG through
`rsvg-convert` (apt `librsvg2-bin`; it renders the SVG with a monospace font, cairosvg does not) when present.
Nothing here is a mock: the screens read the case file the demo built, the plan is made by the playbook engine,
and "apply" runs the engine (the demo configures no connector, so its act items wait as blocked and its manual
items wait for the responder: what a responder sees before adding connectors).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

Step = Callable[[Any, Any], Awaitable[None]]


async def settle(pilot: Any, pause: float = 0.2) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(pause)


async def overview(app: Any, pilot: Any) -> None:
    await settle(pilot)


async def blast(app: Any, pilot: Any) -> None:
    app.open("blast")
    await settle(pilot)
    await pilot.press("down", "enter")  # the credential with the worst findings, offered first
    await settle(pilot)


async def timeline(app: Any, pilot: Any) -> None:
    app.open("timeline")
    await settle(pilot)
    await pilot.press("slash", *"SELECT", "space", *"Case")  # the actor's SOQL over Cases, as the responder types
    await pilot.pause(0.5)
    await settle(pilot, 0.5)


async def findings(app: Any, pilot: Any) -> None:
    app.open("findings")
    await settle(pilot)


async def _plan(app: Any, pilot: Any) -> None:
    await blast(app, pilot)
    await pilot.press("p")
    await settle(pilot)
    await pilot.press("enter")  # the preferred playbook (the demo's incident)
    await settle(pilot, 0.4)


async def approval(app: Any, pilot: Any) -> None:
    await _plan(app, pilot)
    await pilot.press("a")
    await settle(pilot)
    confirm = app.screen.query("#confirm")
    if confirm:  # half typed: Approve stays disabled until the case name is complete
        confirm.first().value = app.screen.expected[:4]
        await pilot.pause()


async def approve_in_modal(app: Any, pilot: Any) -> None:
    """Type the confirmation the approval modal asks for (irreversible items), then approve."""
    modal = app.screen
    confirm = modal.query("#confirm")
    if confirm:
        confirm.first().value = modal.expected
    await pilot.pause()
    await pilot.click("#approve")
    await settle(pilot)


async def apply_progress(app: Any, pilot: Any) -> None:
    await _plan(app, pilot)
    await pilot.press("a")
    await settle(pilot)
    await approve_in_modal(app, pilot)
    await pilot.press("x")
    await settle(pilot, 0.5)


SHOTS: list[tuple[str, Step]] = [
    ("overview", overview),
    ("blast-radius", blast),
    ("timeline", timeline),
    ("findings", findings),
    ("approval", approval),
    ("apply-progress", apply_progress),
]


async def shoot(case: str, name: str, step: Step, size: tuple[int, int], out: Path) -> Path:
    from tui.app import StanchApp

    app = StanchApp(case, analyst="responder")
    async with app.run_test(size=size) as pilot:
        await step(app, pilot)
        return Path(app.save_screenshot(f"{name}.svg", str(out)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--size", default="110x32", help="terminal size COLSxROWS")
    p.add_argument("--only", action="append", help="one shot by name; repeatable")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    cols, rows = (int(x) for x in args.size.split("x"))
    from casefile import findings as findings_mod
    from casefile.case import open_case
    from tui.demo import build_demo

    rsvg = shutil.which("rsvg-convert")
    with tempfile.TemporaryDirectory(prefix="stanch-shots-") as tmp:
        os.environ["STANCH_CONFIG_DIR"] = str(Path(tmp) / "config")  # no connector of the user's leaks in
        os.chdir(tmp)  # the case is opened by a relative name: no temporary path on screen
        build_demo(Path("stanch-demo.stanch"), events=args.events, seed=7, quiet=True)
        with open_case("stanch-demo.stanch", analyst="responder") as case:
            findings_mod.run(case)
        for name, step in SHOTS:
            if args.only and name not in args.only:
                continue
            # each shot starts from a fresh copy (same name), so a plan made by one does not show in the next
            Path(tmp, name).mkdir()
            shutil.copyfile(Path(tmp, "stanch-demo.stanch"), Path(tmp, name, "stanch-demo.stanch"))
            os.chdir(Path(tmp, name))
            svg = asyncio.run(shoot("stanch-demo.stanch", name, step, (cols, rows), args.out.resolve()))
            line = f"{svg.relative_to(args.out.parent) if svg.is_relative_to(args.out.parent) else svg}"
            if rsvg:
                png = svg.with_suffix(".png")
                subprocess.run([rsvg, "-o", str(png), str(svg)], check=True)
                line += f" + {png.name}"
            print(line)
    if not rsvg:
        print("rsvg-convert not found (apt install librsvg2-bin): SVG only", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
