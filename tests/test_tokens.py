"""Tokens as machine code: `llamacpu disasm --tokens`, its JSON twin and the debugger's tokens screen."""

from __future__ import annotations

import json
from pathlib import Path

from llamacpu import cli
from llamacpu.trace import load_trace, trace_isa
from llamacpu.tokens import format_listing, token_listing
from tui.app import DebuggerApp
from tui.model import TraceView
from tui.screens.tokens import TokensScreen

DEMO = Path(__file__).parent.parent / "traces" / "demo" / "demo.pt"


def test_the_demo_prompt_as_pieces_and_ids(capsys) -> None:
    assert cli.main(["disasm", "--tokens", str(DEMO)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "; prompt '512 + 489': 9 tokens, compiled into 60 slots"
    assert lines[2].split() == [";", "piece", "'5'", "'1'", "'2'", "'", "'", "'+'", "'", "'", "'4'", "'8'", "'9'"]
    assert lines[3].split() == [";", "id", "8", "4", "5", "2", "13", "2", "7", "11", "12"]
    assert lines[5].startswith("0000  REG    pc -> 0000        ; program counter")
    assert lines[5].endswith("<- ' '#3 0.18  '+'#4 0.18  '5'#0 0.12")
    assert len(lines) == 5 + 60


def test_json_twin_names_each_slots_sources(capsys) -> None:
    assert cli.main(["disasm", "--tokens", str(DEMO), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    trace = load_trace(DEMO)
    assert [t["id"] for t in out["tokens"]] == trace["prompt_tokens"].tolist()
    assert [t["piece"] for t in out["tokens"]] == trace["prompt_pieces"]
    slot = out["slots"][21]
    assert slot["address"] == 21 and slot["role"] == "a[0]" and slot["text"].startswith("DATA")
    weights = [s["weight"] for s in slot["sources"]]
    assert len(weights) == 3 and weights == sorted(weights, reverse=True)
    attn = trace["plan"]["prompt_attn"].float()[21]
    assert slot["sources"][0]["token"] == int(attn.argmax())


def test_a_program_without_prompt_is_one_line(capsys, tmp_path: Path) -> None:
    trace = tmp_path / "asm.pt"
    program = Path(__file__).parent.parent / "examples" / "faults" / "jump-to-data.s"
    assert cli.main(["asm", str(program), "--max-steps", "4", "-o", str(trace)]) == 0
    capsys.readouterr()
    assert cli.main(["disasm", "--tokens", str(trace)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no prompt" in err[0]
    assert cli.main(["disasm", "--tokens", str(DEMO), "--slots", "0:4"]) != 0
    assert "--slots goes with the memory listing" in capsys.readouterr().err


async def test_the_debugger_tokens_screen_shows_the_same_lines() -> None:
    view = TraceView.open(DEMO)
    app = DebuggerApp(view=view)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, TokensScreen)
        text = str(app.screen.query_one(".listing").render())
        expected = format_listing(token_listing(view.trace, trace_isa(view.trace)))
        assert expected[3] in text and expected[26] in text
        await pilot.press("escape")
        assert not isinstance(app.screen, TokensScreen)
