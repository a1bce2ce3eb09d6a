"""Every console screen opens on the demo at 80x24 in a 16-colour terminal, shows its keys, answers `?` and the
palette, and every key in its footer is reachable without a mouse. Pilot-driven, headless."""

from __future__ import annotations

import asyncio

import pytest
import textual.constants
from textual.widgets import Input

from tui.app import SCREENS, StanchApp
from tui.demo import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo") / "demo.stanch", events=3000, quiet=True)


@pytest.fixture(autouse=True)
def sixteen_colours(monkeypatch, tmp_path):
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.mark.parametrize("name", list(SCREENS))
def test_screen_opens_at_80x24_in_16_colours(demo, name):
    async def drive():
        app = StanchApp(str(demo), start=name)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.console.color_system == "standard"
            screen = app.screen
            assert getattr(screen, "NAME", "") == name, f"screen {name} did not open: {type(screen).__name__}"
            assert screen.title and name.split()[0][:5] in screen.title.replace(" ", "")
            shown = [b for b in screen.active_bindings.values() if b.binding.show]
            typing = isinstance(app.focused, Input)  # a screen waiting for a seed or filter: keys type into it
            assert shown or typing, f"{name}: no keys in the footer"
            svg = app.export_screenshot()
            assert "stanch" in svg or "Demo" in svg
            await pilot.press("f1" if typing else "question_mark")
            await pilot.pause()
            assert app.screen.query("HelpPanel"), f"{name}: ? shows no help"
            await pilot.press("f1")
            await pilot.pause()
            assert not app.screen.query("HelpPanel")
            if typing:
                await pilot.press("escape")
            await pilot.press(":")
            await pilot.press(*"audit", "enter")
            await pilot.pause()
            await app.workers.wait_for_complete()
            assert getattr(app.screen, "NAME", "") == "audit"

    asyncio.run(drive())


def test_read_only_offers_no_write_anywhere(demo):
    from tui.app import WRITES

    async def drive():
        app = StanchApp(str(demo), read_only=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for name in SCREENS:
                app.action_goto(name)
                await pilot.pause()
                await app.workers.wait_for_complete()
                footer = {b.binding.action.split("(")[0] for b in app.screen.active_bindings.values()
                          if b.binding.show}
                assert not footer & WRITES, f"{name} offers {footer & WRITES} read-only"
                palette = {action.split("(")[0] for _, action, _ in app.screen_actions()}
                assert not palette & WRITES, f"{name} palette offers {palette & WRITES} read-only"

    asyncio.run(drive())
