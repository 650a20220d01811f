"""Cross-ISA execution: translation between address-key sets, the re-keyed twin, `llamacpu isa`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu import cli
from llamacpu.cross_isa import cross, rekeyed, translate
from llamacpu.disasm import disassemble
from llamacpu.evaluate import draw_held_out
from llamacpu.isa import ISA, SlotLayout
from llamacpu.tasks import AdditionTask, collate

from machine_fixtures import FIXTURE_RUN, one_error_line, small_run_config

GENERAL_CPU = Path(__file__).parent.parent / "llamacpu" / "runs" / "general-cpu"


@pytest.fixture(scope="module")
def fixture_machine():
    machine, _, _ = ckpt.load_machine(FIXTURE_RUN)
    return machine


def image(isa: ISA, a: int = 47, b: int = 38) -> torch.Tensor:
    """The addition compiler's image of a + b in ``isa``'s keys: [W, D]."""
    return collate([AdditionTask().build((a, b), isa)], isa).memory[0]


def test_translation_keeps_the_text_and_changes_the_keys() -> None:
    isa0, isa1 = ISA(SlotLayout(key_seed=0)), ISA(SlotLayout(key_seed=1))
    img0 = image(isa0)
    img1 = translate(img0, isa0, isa1)
    assert disassemble(img1, isa1) == disassemble(img0, isa0)  # the same program in B's language
    assert not torch.equal(img1, img0)
    assert torch.equal(img1, image(isa1))  # what B's own compiler would have written
    # Read with the wrong keys, the same image is another program: its pointers land elsewhere.
    right = disassemble(img0, isa0)
    changed = [y for x, y in zip(disassemble(img0, isa1), right) if x != y]
    assert changed == [y for y in right if " INST " in y]  # every instruction (REG's 0000 reads as 0000 by chance)


def test_rekeyed_twin_reads_its_own_language_as_the_original_reads_ours(fixture_machine) -> None:
    twin = rekeyed(fixture_machine, seed=1)
    assert not fixture_machine.isa.same_language(twin.isa)
    img0 = image(fixture_machine.isa)
    img1 = translate(img0, fixture_machine.isa, twin.isa)
    with torch.no_grad():
        ours = fixture_machine.controller.slot_encoder(img0)
        theirs = twin.controller.slot_encoder(img1)
    assert torch.allclose(ours, theirs, atol=1e-5)
    attn0 = fixture_machine.isa.read_pointers(img0)
    attn1 = twin.isa.read_pointers(img1)
    assert torch.allclose(attn0, attn1, atol=1e-5)


def test_cross_collapses_then_recovers_on_the_rekeyed_twin(fixture_machine) -> None:
    task = AdditionTask()
    problems = draw_held_out(task, 1, 200, seed="cross-12345-1")  # what `isa cross` draws: 16 pairs
    result = cross(fixture_machine, rekeyed(fixture_machine, seed=1), task, problems, 1).to_json()
    assert result["trials"] == 16 and result["same_language"] is False
    assert result["a_on_a"]["correct"] == 16
    assert result["a_on_b"]["correct"] == 0  # A's keys on B: collapse
    assert result["translated"]["correct"] == 16  # through A's disasm and B's asm: recovery
    assert result["b_on_b"] == result["a_on_a"]  # one chip: B runs its own code as A runs A's


def test_cross_on_the_same_machine_is_a_control(fixture_machine) -> None:
    task = AdditionTask()
    problems = draw_held_out(task, 2, 20, seed=3)
    r = cross(fixture_machine, fixture_machine, task, problems, 2)
    assert r.same_language
    assert r.conditions["a_on_b"] == r.conditions["a_on_a"] == r.conditions["b_on_b"]


def test_isa_show_names_the_seed_and_fingerprint(capsys) -> None:
    assert cli.main(["isa", "show", "--run", str(FIXTURE_RUN), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key_seed"] == 0 and out["n_slots"] == 256 and out["slot_dim"] == 121
    assert out["keys_fingerprint"] == "3f607c8f"


def test_isa_cross_json_on_the_fixture(capsys) -> None:
    code = cli.main(["isa", "cross", "--from", str(FIXTURE_RUN), "--to", str(GENERAL_CPU), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["b_reads_prompt"] is False  # the general CPU trained on programs: no prompt, no plan
    r = out["results"][0]
    assert r["b_on_b"] is None
    assert (r["a_on_a"]["correct"], r["a_on_b"]["correct"], r["translated"]["correct"]) == (16, 16, 16)


def _saved_untrained(path: Path, layout: SlotLayout) -> Path:
    config = replace(small_run_config(), layout=layout)
    ckpt.write_config(path, config)
    ckpt.save_checkpoint(path, ckpt.build_machine(config), 0, {})
    return path


def test_isa_cross_bad_input_is_one_line(capsys, tmp_path: Path) -> None:
    line = one_error_line(capsys, ["isa", "cross", "--from", str(tmp_path / "nope"), "--to", str(FIXTURE_RUN)])
    assert "nope" in line
    line = one_error_line(capsys, ["isa", "cross", "--from", str(GENERAL_CPU), "--to", str(FIXTURE_RUN)])
    assert "compiles no problems" in line
    ckpt.write_config(tmp_path / "fresh", small_run_config())
    line = one_error_line(capsys, ["isa", "cross", "--from", str(FIXTURE_RUN), "--to", str(tmp_path / "fresh")])
    assert "no checkpoint" in line
    other = _saved_untrained(tmp_path / "k16", SlotLayout(n_slots=60, key_dim=16))
    line = one_error_line(capsys, ["isa", "cross", "--from", str(FIXTURE_RUN), "--to", str(other)])
    assert "differ in size" in line
    line = one_error_line(capsys, ["isa", "cross", "--from", str(FIXTURE_RUN), "--rekey", "1", "--trials", "0"])
    assert "--trials" in line


def test_train_isa_seed_makes_another_machine_language(capsys, tmp_path: Path) -> None:
    from llamacpu.cli_train import _new_run_config

    args = cli.build_parser().parse_args(["train", "--isa-seed", "3", "--slots", "40"])
    config = _new_run_config(args)
    assert config.layout == SlotLayout(n_slots=40, key_seed=3)
    ckpt.write_config(tmp_path / "r", config)
    line = one_error_line(capsys, ["train", "--run", str(tmp_path / "r"), "--isa-seed", "4", "--quiet"])
    assert "--isa-seed" in line  # a run keeps the language it was made with
