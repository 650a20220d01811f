"""The debugger app through Textual's pilot (keys in, state and rendered text out) and snapshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import DataTable

from debug_fixtures import make_trace, save_trace, write_store
from llamacpu.trace import TraceStore
from tui.app import DebuggerApp, all_bindings
from tui.model import TraceView
from tui.screens.debugger import DebuggerScreen
from tui.screens.store import StoreScreen
from tui.screens.text import HelpScreen
from tui.widgets.memory import MemoryView

SIZE = (130, 40)
WRONG_STEP = 5


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    return save_trace(make_trace(123, 456, wrong_step=WRONG_STEP, doubtful_slot=21),
                      tmp_path_factory.mktemp("app") / "demo.pt")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("store") / "run")


def make_app(trace_path: Path, **kwargs) -> DebuggerApp:
    return DebuggerApp(view=TraceView.open(trace_path), **kwargs)


def screen_text(app: DebuggerApp) -> str:
    """What the terminal shows, as plain text."""
    return app.export_screenshot()  # SVG, but every visible character is in it


def status(app: DebuggerApp) -> str:
    return str(app.screen.query_one("#status").render())


async def test_step_back_first_last(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        await pilot.press("home")
        assert screen.position == 0
        await pilot.press("n", "right", "n")
        assert screen.position == 3
        await pilot.press("p", "left")
        assert screen.position == 1
        await pilot.press("end")
        assert screen.position == screen.view.length - 1 and "step 14/14" in status(app)
        await pilot.press("home")
        assert screen.position == 0


async def test_opens_at_the_first_step_that_went_wrong(trace_path):
    """A wrong answer opens where it first went wrong, with the compiled image on screen."""
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert screen.view.phase(screen.position) == ("exec", WRONG_STEP)
        assert f"step {WRONG_STEP + 1}/14, the first that went wrong: OEU wrong (home: the plan)" in status(app)
        assert "WRONG" in str(screen.query_one("#oeu").render())
        memory = screen.query_one(MemoryView)
        shown = [memory.render_line(y).text for y in range(memory.scrollable_content_region.height)]
        assert any("INST    ADD [" in line for line in shown) and not any("EMPTY" in line for line in shown[:5])
        await pilot.press("home")
        assert screen.position == 0


async def test_a_right_answer_opens_at_the_first_execute_step(tmp_path):
    app = make_app(save_trace(make_trace(12, 34), tmp_path / "right.pt"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.view.phase(screen.position) == ("exec", 0)
        assert "step 1/" in status(app) and "the first execute step" in status(app)


async def test_a_wrong_plan_opens_at_the_first_slot_unlike_the_compilers(tmp_path):
    trace = make_trace(12, 34)
    trace["meta"]["correct"] = False
    trace["plan"]["slot"][30] = trace["plan"]["slot"][31]  # carry[1] planned as a[1]
    app = make_app(save_trace(trace, tmp_path / "plan.pt"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.position == 30 and "slot unlike the compiler's" in status(app)


@pytest.fixture
def wrong_plan(tmp_path) -> Path:
    """A plan with two slots unlike the compiler's: carry[1] planned as a[1], r[2] as b[2]."""
    trace = make_trace(123, 456)
    trace["meta"]["correct"] = False
    trace["plan"]["slot"][30] = trace["plan"]["slot"][31]
    trace["plan"]["slot"][45] = trace["plan"]["slot"][42]
    return save_trace(trace, tmp_path / "plan.pt")


async def test_slots_unlike_the_compilers_are_marked_and_found(wrong_plan):
    app = make_app(wrong_plan)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert "plan exact: no (2 slots differ)" in str(screen.query_one("#title").render())
        await pilot.press("end")
        memory = screen.query_one(MemoryView)
        memory.select(25)
        await pilot.pause()
        shown = {int(line[8:12]): line[:5] for line in
                 (memory.render_line(y).text for y in range(memory.scrollable_content_region.height))}
        assert shown[30][4] == "!" and shown[45][4] == "!" and shown[31][4] == " "
        await pilot.press("d")
        assert screen.position == 30 and memory.cursor == 30
        assert "0030 (carry[1]) planned DATA 2, the compiler's DATA 0   (1 of 2; d: the next)" in status(app)
        await pilot.press("d")
        assert screen.position == 45 and "(2 of 2" in status(app)
        await pilot.press("d")
        assert screen.position == 30  # round again
        await pilot.press("home", "x", *["down"] * 5, "enter", "c")  # condition: planned slot unlike the compiler's
        assert screen.position == 30 and "planned slot unlike the compiler's image" in status(app)


async def test_breakpoints_persist_per_trace(trace_path, wrong_plan, tmp_path):
    saved = tmp_path / "state" / "breakpoints.json"
    app = make_app(trace_path, breakpoints_file=saved)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one(MemoryView).cursor = 28
        await pilot.press("b", "x", "enter")
    app = make_app(trace_path, breakpoints_file=saved)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert [b.describe() for b in app.screen.session.breakpoints] == ["PC reaches 0028",
                                                                          "OEU output differs from expected"]
        assert "2 breakpoints restored from the last session" in status(app)
        app.screen.query_one("#breakpoints").focus()
        await pilot.press("space")  # disabled, and kept so
    app = make_app(trace_path, breakpoints_file=saved)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert [b.enabled for b in app.screen.session.breakpoints] == [False, True]
    app = make_app(wrong_plan, breakpoints_file=saved)  # another trace: its own breakpoints
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.session.breakpoints == []
    saved.write_text("{not json")
    app = make_app(trace_path, breakpoints_file=saved)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "saved breakpoints not read" in status(app) and app.screen.session.breakpoints == []
        await pilot.press("b")
    assert saved.read_text() == "{not json"  # a file we could not read is left alone


async def test_a_step_repaints_only_rows_it_changed(trace_path):
    """Stepping repaints the rows the step changed or marks; the screen then equals a full repaint."""
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        memory = app.screen.query_one(MemoryView)
        await pilot.press("g", *"1", "enter")
        painted = []
        render_line = memory.render_line
        memory.render_line = lambda y: painted.append(y) or render_line(y)
        partial = 0
        for _ in range(12):
            painted.clear()
            top = memory.scroll_y
            await pilot.press("n")
            stepped = screen_text(app)
            if memory.scroll_y == top:  # a scroll repaints every row
                assert 0 < len(painted) < memory.scrollable_content_region.height
                partial += 1
            memory.refresh()
            await pilot.pause()
            assert screen_text(app) == stepped
        assert partial >= 6


async def test_breakpoint_watch_and_continue(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("home")  # from the plan's first step
        memory = screen.query_one(MemoryView)
        memory.cursor = 28
        await pilot.press("b")
        assert "PC reaches 0028" in status(app)
        memory.cursor = 45
        await pilot.press("w")
        await pilot.press("c")  # the plan writes r[2] at plan step 45 first
        assert screen.position == 45 and "watch 0045" in status(app)
        await pilot.press("c")
        assert screen.position == screen.view.position_of_step(2) and "PC reaches 0028" in status(app)
        await pilot.press("c")  # r[2] = 5 + (2+4) mod 10... written at step 10
        assert screen.view.phase(screen.position) == ("exec", 10)
        assert "0045 DATA 0 -> DATA" in status(app)
        await pilot.press("r")
        assert screen.view.phase(screen.position) == ("exec", 2)
        text = screen.query_one("#breakpoints").get_option_at_index(0).prompt.plain
        assert text.startswith("[x] #1 PC reaches 0028")
        screen.query_one("#breakpoints").focus()
        await pilot.press("space")
        assert not screen.session.breakpoints[0].enabled
        await pilot.press("delete")
        assert len(screen.session.breakpoints) == 1


async def test_condition_dialog_stops_on_wrong_oeu(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("home", "x")
        await pilot.press("enter")  # the first condition: OEU output differs from expected
        await pilot.press("c")
        assert screen.view.phase(screen.position) == ("exec", WRONG_STEP)
        assert "WRONG" in str(screen.query_one("#oeu").render())


async def test_condition_with_threshold(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("home", "x", "down", "enter")  # confidence below x
        await pilot.press("backspace", "backspace", "backspace", *"0.7", "enter")
        assert screen.session.breakpoints[0].describe() == "confidence < 0.7"
        await pilot.press("c")
        assert screen.position == 21


async def test_goto_dialog(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("g", *"7", "enter")  # step 7: the 7th cycle, index 6 of the per-step arrays
        assert screen.view.phase(screen.position) == ("exec", 6) and "step 7/14" in status(app)
        await pilot.press("g", *"p4", "enter")
        assert screen.position == 4
        await pilot.press("g", *"zz", "enter")
        assert "not a step" in status(app) and screen.position == 4


async def test_search_slots_jumps_to_the_next_match(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, memory = app.screen, app.screen.query_one(MemoryView)
        await pilot.press("end", "slash", *"INST", "enter")
        first = memory.cursor
        assert screen.view.row(screen.position, first).type == "INST"
        assert f"{first:04d} INST" in status(app) and "slots match 'INST'" in status(app)
        await pilot.press("slash", "enter")  # the last search is offered again: the next match
        assert memory.cursor > first and screen.view.row(screen.position, memory.cursor).type == "INST"
        await pilot.press("slash", *"r[2]", "enter")  # typing replaces the offered text
        assert memory.cursor == 45 and "; r[2]" in status(app)
        await pilot.press("slash", *"7", "enter")
        assert memory.cursor == 7
        await pilot.press("slash", *"carry[9]", "enter")
        assert memory.cursor == 7 and "no slot matches 'carry[9]'" in status(app)
        await pilot.press("slash", *"55", "enter")  # a slot below the screen scrolls into view
        top = int(memory.scroll_y)
        assert top <= 55 < top + memory.scrollable_content_region.height
        assert "0055" in screen_text(app)


async def test_empty_slots_are_dimmed(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g", *"p20", "enter")  # slots past 20 are not planned yet
        memory = app.screen.query_one(MemoryView)
        view, pos = memory.view, memory.position
        rows = [view.row(pos, a) for a in range(view.window)]
        empty = next(r.addr for r in rows if r.type == "EMPTY" and not r.role)
        reserved = next(r.addr for r in rows if r.type == "EMPTY" and r.role)  # an output slot, say
        data = next(r.addr for r in rows if r.type == "DATA")

        def colour(addr: int):
            return list(memory._row_strip(addr, 60))[0].style.color

        dim = memory.get_component_rich_style("memory--empty").color
        assert colour(empty) == dim and colour(reserved) == colour(data) != dim


async def test_heatmap_colour_map_toggles_to_cividis(trace_path, tmp_path):
    from tui.colormap import STOPS
    from tui.widgets.attention import AttentionPane

    def colours(pane: AttentionPane) -> set[tuple[int, int, int]]:
        return {seg.style.bgcolor.triplet for strip in pane._strips[1] for seg in strip
                if seg.style and seg.style.bgcolor and seg.text.strip(" .:-=+*#%@") == ""}

    app = make_app(trace_path, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        pane = app.screen.query_one(AttentionPane)
        assert pane.cmap == "viridis" and tuple(STOPS["viridis"][0]) in colours(pane)
        pane.focus()
        await pilot.press("v")
        assert pane.cmap == "cividis" and pane.border_subtitle == "cividis"
        cividis = colours(pane)
        assert tuple(STOPS["cividis"][0]) in cividis and tuple(STOPS["viridis"][0]) not in cividis
        await pilot.press("a")  # the plan screen's prompt attention follows
        assert "cividis" in str(app.screen.query_one(".screen-title").render())
        await pilot.press("escape", "v")
        assert pane.cmap == "viridis" and not pane.border_subtitle


async def test_help_lists_every_binding(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        for _, binding in all_bindings():
            assert binding.description in text
        await pilot.press("escape")
        assert isinstance(app.screen, DebuggerScreen)


async def test_palette_offers_every_action(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for where, binding in all_bindings():
            if where != "store":
                assert (binding.description if not where else f"{where}: {binding.description}") in titles
        assert {"Export SVG screenshot", "Export PNG heatmaps", "Export disassembly"} <= titles


async def test_palette_runs_an_action(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon")
        await pilot.press(*"last")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen_stack[-1]
        assert isinstance(screen, DebuggerScreen) and screen.position == screen.view.length - 1


async def test_screens_listing_and_plan(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end", "l")
        text = str(app.screen.query_one(".listing").render())
        assert "0056  INST   COPY [0050], [0050] -> [0055]" in text
        await pilot.press("escape", "a")
        text = str(app.screen.query_one(".listing").render())
        assert "0021 DATA   3?0.61" in text and "'3' " in text


async def test_too_small_terminal_says_so(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=(60, 20)):
        assert "Terminal too small: 60x20" in str(app.screen.query_one("#too-small").render())
        assert app.screen.has_class("too-small")


async def test_keymap_remaps(trace_path):
    app = make_app(trace_path, keymap={"step": "j"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("home", "j", "j")
        assert app.screen.position == 2


async def test_export(trace_path, tmp_path):
    app = make_app(trace_path, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "end", "e")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["demo-step14.png", "demo-step14.svg", "demo-step14.txt"]
        assert (tmp_path / "demo-step14.png").read_bytes()[:4] == b"\x89PNG"
        assert "HALT" in (tmp_path / "demo-step14.txt").read_text()


async def test_store_browser_and_training_steps(store):
    rows = TraceStore(store).rows()
    app = DebuggerApp(store=store, rows=rows)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StoreScreen) and len(screen.shown) == 4
        screen.query_one("#f-result").value = "wrong"
        await pilot.pause()
        assert {r.correct for r in screen.shown} == {False}
        screen.query_one("#f-result").clear()
        screen.query_one("#f-probe").value = "p0"
        await pilot.pause()
        assert [r.training_step for r in screen.shown] == [300, 200, 100]
        await pilot.press("down", "enter")  # training step 200, opened off the UI thread
        await app.workers.wait_for_complete()
        await pilot.pause()
        debugger = app.screen
        assert isinstance(debugger, DebuggerScreen) and debugger.series.current.training_step == 200
        await pilot.press("g", *"6", "enter", "w")
        await pilot.press("left_square_bracket")
        await pilot.pause()
        earlier = app.screen
        assert earlier.series.current.training_step == 100
        assert earlier.view.phase(earlier.position) == ("exec", 5)
        assert len(earlier.session.breakpoints) == 1
        assert "WRONG" in str(earlier.query_one("#oeu").render())  # step 100 still got it wrong
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert app.screen.series.current.training_step == 300
        await pilot.press("right_square_bracket")
        assert "no later training step" in status(app)
        await pilot.press("s")
        assert isinstance(app.screen, StoreScreen)


# ---- snapshots (fixed size; regenerate with pytest --snapshot-update) ----

def test_snapshot_execute_step(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["end", "home", *["n"] * 65])


def test_snapshot_plan_step(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["g", *"p21", "enter"])


def test_snapshot_help(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["question_mark"])


def test_snapshot_condition_dialog(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["x"])


def test_snapshot_palette(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["colon", *"cont"])


def test_snapshot_listing(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["end", "l"])


def test_snapshot_plan_screen(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["a"])


def test_snapshot_tokens_screen(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=SIZE, press=["t"])


def test_snapshot_too_small(snap_compare, trace_path):
    assert snap_compare(make_app(trace_path), terminal_size=(60, 20))


def test_snapshot_store(snap_compare, store):
    assert snap_compare(DebuggerApp(store=store, rows=TraceStore(store).rows()), terminal_size=SIZE)


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_snapshot_opening(snap_compare, trace_path, size):
    """Where a wrong trace opens: its first wrong step, the compiled image on screen."""
    assert snap_compare(make_app(trace_path), terminal_size=size)


# ---- keys and layout that do not depend on focus or on the first size ----

async def test_heatmap_keys_work_whichever_pane_has_focus(trace_path):
    from tui.widgets.attention import AttentionPane

    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.screen.query_one(AttentionPane)
        assert app.screen.query_one(MemoryView).has_focus
        await pilot.press("v", "m")
        assert pane.cmap == "cividis" and pane.dist == 1
        app.screen.query_one("#breakpoints").focus()
        await pilot.press("v", "m")
        assert pane.cmap == "viridis" and pane.dist == 2


async def test_a_resize_refits_the_heatmaps_at_once(trace_path):
    from tui.widgets.attention import AttentionPane

    app = make_app(trace_path)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.screen.query_one(AttentionPane)
        await pilot.pause()
        small = pane.render_line(0).text
        await pilot.resize_terminal(130, 40)
        await pilot.pause()
        wide = pane.render_line(0).text
        assert small != wide and "addr 35-57/58" in wide and pane.columns > 20


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_memory_rows_show_confidence_and_role_and_no_blank_columns(trace_path, size):
    app = make_app(trace_path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        memory = app.screen.query_one(MemoryView)
        rows = [memory.render_line(y).text.rstrip() for y in range(memory.scrollable_content_region.height)]
        for line in rows:
            addr = int(line[8:12])
            role = app.screen.view.roles.get(addr)
            assert re.search(r" [01]\.\d\d( |$)", line), line
            if role:
                assert line.endswith(f"; {role}"), line
        if size[0] >= 100:  # room for every column: the pane is as wide as its rows, no wider
            assert memory.outer_size.width == memory.content_width
            assert max(len(line) for line in rows) >= memory.scrollable_content_region.width - 6


async def test_help_keeps_keys_and_descriptions_apart(trace_path):
    app = make_app(trace_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        text = str(app.screen.query_one("Static").render())
        assert "delete/backspace   delete" in text and "backspacedelete" not in text


async def test_q_in_the_store_browser_asks_twice(store):
    app = DebuggerApp(store=store, rows=TraceStore(store).rows())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, StoreScreen) and app.return_code is None
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_opening_from_the_store_shows_progress(store):
    rows = TraceStore(store).rows()
    app = DebuggerApp(store=store, rows=rows)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.opening(rows[0])
        assert screen.query_one(DataTable).loading
        assert f"opening {rows[0].path.name} ..." in str(screen.query_one(".screen-title").render())
        screen.opening(None)
        assert not screen.query_one(DataTable).loading
