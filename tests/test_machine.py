"""The machine as a whole: end-to-end gradients, computing through memory, the trained plan, and
the place values that the prompt carries."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from llamacpu import checkpoint as ckpt
from llamacpu.controller import MAX_NUMBERS, MAX_PLACE, Prompt, PromptTokenizer, digit_places
from llamacpu.evaluate import step_limit
from llamacpu.isa import DATA, EMPTY, INST, OPDEF, REG
from llamacpu.machine import Machine
from llamacpu.tasks import AdditionTask, Program, collate
from llamacpu.tasks.add import A, B, BLOCK, HEADER
from llamacpu.tasks.base import IGNORE

from machine_fixtures import FIXTURE_RUN, small_run_config

TASK = AdditionTask()


@pytest.fixture(scope="module")
def trained() -> Machine:
    machine, _, latest = ckpt.load_machine(FIXTURE_RUN)
    assert latest is not None
    return machine.eval()


def grad_total(module: nn.Module) -> float:
    """Sum of |grad| over a module's parameters (0 when none received any)."""
    grads = [p.grad.abs().sum() for p in module.parameters() if p.grad is not None]
    total = float(torch.stack(grads).sum()) if grads else 0.0
    assert total == total and total != float("inf"), "gradient is not finite"
    return total


def data_addr(operand: str, digit: int) -> int:
    """Address of digit ``digit`` (0 = units) of operand "a" or "b" in the addition memory map."""
    return HEADER + BLOCK * digit + {"a": A, "b": B}[operand]


def run_hard(machine: Machine, program: Program, memory: torch.Tensor, prompt: Prompt) -> tuple[int, bool]:
    """Free-run a memory image [1, W, D] from its program's prompt: (answer, halted)."""
    with torch.no_grad():
        ex = machine.execute(prompt, memory, step_limit(program.steps), hard=True)
        digits = machine.read_answer(ex.memory, program.answer_slots[None]).argmax(-1)[0]
    return TASK.answer_from_digits(digits.tolist()), bool(ex.halted[0])


# ---- end to end differentiable ----

def test_answer_loss_alone_reaches_oeu_plan_heads_and_pc_head() -> None:
    machine = ckpt.build_machine(small_run_config(n_slots=40)).train()
    programs = [TASK.compile(a, b, machine.isa) for a, b in [(3, 5), (7, 8), (9, 9)]]
    batch = collate(programs, machine.isa)
    prompt = machine.controller.tokenizer.batch(batch.prompts)
    assert torch.is_grad_enabled()

    plan = machine.plan(prompt, batch.window)
    ex = machine.execute(prompt, plan.memory, batch.steps)  # soft, no teacher
    answer = machine.read_answer(ex.memory, batch.answer_slots)  # (B, R, C)
    loss = F.nll_loss(answer.clamp(min=1e-9).log().flatten(0, 1), batch.answer_digits.flatten())
    assert torch.isfinite(loss)
    loss.backward()

    ctrl = machine.controller
    assert grad_total(machine.oeu) > 0, "no gradient reaches the OEU"
    assert grad_total(ctrl.type_head) > 0, "no gradient reaches the plan's type head"
    assert grad_total(ctrl.content_head) > 0, "no gradient reaches the plan's content head"
    for name, head in zip(("op", "src1", "src2", "dst"), ctrl.pointer_heads):
        assert grad_total(head) > 0, f"no gradient reaches the plan's {name} pointer head"
    assert grad_total(ctrl.pc_head) > 0, "no gradient reaches the PC head"


def test_plan_pass_gives_the_prompt_keys_and_values_that_encoding_it_alone_gives() -> None:
    """The execute phase reuses the plan pass's prompt keys and values instead of a second pass
    over the prompt: same values, same execution, same gradients (left padding included)."""
    machine = ckpt.build_machine(small_run_config(n_slots=40)).train()
    programs = [TASK.compile(a, b, machine.isa) for a, b in [(3, 5), (7, 8)]]
    batch = collate(programs, machine.isa)
    prompt = machine.controller.tokenizer.batch(["3+5", "what is 7 + 8?"])  # different lengths: padded
    assert bool((prompt.mask == 0).any())

    def run(reuse: bool) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, list[torch.Tensor]]:
        machine.zero_grad()
        plan = machine.plan(prompt, batch.window)
        kv = plan.prompt_kv if reuse else machine.controller.encode_prompt(prompt)
        ex = machine.execute(prompt, plan.memory, batch.steps, prompt_kv=kv)
        ex.pc.log().sum().backward()
        grads = [p.grad.clone() for p in machine.controller.parameters() if p.grad is not None]
        return [(k.detach(), v.detach()) for k, v in kv], ex.pc.detach(), grads

    kv_plan, pc_plan, grads_plan = run(reuse=True)
    kv_alone, pc_alone, grads_alone = run(reuse=False)
    assert len(kv_plan) == len(kv_alone) == machine.controller.backbone.config.num_hidden_layers
    for (k1, v1), (k2, v2) in zip(kv_plan, kv_alone):
        assert k1.shape == k2.shape and k1.shape[2] == prompt.ids.shape[1]
        torch.testing.assert_close(k1, k2, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v1, v2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pc_plan, pc_alone, rtol=1e-4, atol=1e-6)
    assert len(grads_plan) == len(grads_alone)
    for g1, g2 in zip(grads_plan, grads_alone):
        torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-5)


# ---- it computes through memory ----

@pytest.mark.parametrize(("operand", "digit", "value", "expected"), [
    ("a", 0, 7, 127 + 456),
    ("b", 0, 9, 123 + 459),  # 3 + 9 carries into the tens
    ("a", 1, 8, 183 + 456),
    ("b", 2, 9, 123 + 956),  # a carry out of the last digit
])
def test_answer_follows_an_overwritten_data_slot(trained: Machine, operand: str, digit: int, value: int,
                                                  expected: int) -> None:
    program = TASK.compile(123, 456, trained.isa)
    prompt = trained.controller.tokenizer.batch([program.prompt])
    with torch.no_grad():
        memory = trained.harden(trained.plan(prompt, program.window).memory)
    addr = data_addr(operand, digit)
    assert program.roles[addr] == f"{operand}[{digit}]"
    assert run_hard(trained, program, memory, prompt) == (579, True)

    memory[0, addr] = trained.isa.encode(DATA, content=value)
    assert run_hard(trained, program, memory, prompt) == (expected, True)


# ---- the trained plan is the compiler's image ----

def target_slots(program: Program) -> list[tuple]:
    """(address, type, content, pointers) per slot, None where the compiler does not care."""
    rows = []
    for addr in range(program.window):
        content = int(program.contents[addr])
        pointers = tuple(None if int(p) == IGNORE else int(p) for p in program.pointers[addr])
        rows.append((addr, int(program.types[addr]), None if content == IGNORE else content, pointers))
    return rows


def planned_slots(machine: Machine, memory: torch.Tensor, program: Program) -> list[tuple]:
    """The decoded slots of a planned memory [W, D], masked where the compiler does not care."""
    rows = []
    for (addr, _, content, pointers) in target_slots(program):
        slot = machine.isa.decode(memory[addr])
        rows.append((addr, slot.type_id, None if content is None else slot.content,
                     tuple(None if want is None else (got[0] if got else None)
                           for want, got in zip(pointers, slot.pointers))))
    return rows


@pytest.mark.parametrize("problems", [[(7, 5), (0, 0)], [(123, 456), (999, 999), (480, 521)], [(1234, 8766)]])
def test_trained_plan_equals_the_compiled_image(trained: Machine, problems: list[tuple[int, int]]) -> None:
    programs = [TASK.compile(a, b, trained.isa) for a, b in problems]
    prompt = trained.controller.tokenizer.batch([p.prompt for p in programs])
    with torch.no_grad():
        memory = trained.plan(prompt, programs[0].window).memory
    for i, program in enumerate(programs):
        want = target_slots(program)
        assert {t for _, t, _, _ in want} == {EMPTY, REG, OPDEF, DATA, INST}
        assert planned_slots(trained, memory[i], program) == want, program.prompt


# ---- place values ----

@pytest.mark.parametrize(("text", "places", "numbers"), [
    ("12 + 345", [2, 1, 0, 0, 0, 3, 2, 1], [1, 1, 0, 0, 0, 2, 2, 2]),
    ("7+0", [1, 0, 1], [1, 0, 2]),
    ("what is 40 + 5?", [0] * 8 + [2, 1, 0, 0, 0, 1, 0], [0] * 8 + [1, 1, 0, 0, 0, 2, 0]),
    ("", [], []),
    ("a + b", [0] * 5, [0] * 5),
])
def test_digit_places(text: str, places: list[int], numbers: list[int]) -> None:
    assert digit_places(text) == (places, numbers)


def test_prompt_batch_is_left_padded_with_place_values() -> None:
    tok = PromptTokenizer()
    prompt = tok.batch(["1 + 23", "456 + 7890"])
    assert prompt.mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [1] * 10]
    assert prompt.places.tolist() == [[0, 0, 0, 0, 1, 0, 0, 0, 2, 1], [3, 2, 1, 0, 0, 0, 4, 3, 2, 1]]
    assert prompt.numbers.tolist() == [[0, 0, 0, 0, 1, 0, 0, 0, 2, 2], [1, 1, 1, 0, 0, 0, 2, 2, 2, 2]]
    assert prompt.ids[0, :4].tolist() == [tok.pad_id] * 4
    assert prompt.ids[0, 4:].tolist() == tok.encode("1 + 23")[0]
    assert prompt.ids[0, 5:8].tolist() == prompt.ids[1, 3:6].tolist()  # " + " in both rows


def test_prompt_place_values_saturate() -> None:
    """Prompts keep every place (a tagged controller embeds places past MAX_PLACE); an untagged
    one embeds every place past MAX_PLACE as MAX_PLACE."""
    digits = "9" * (MAX_PLACE + 8)
    prompt = PromptTokenizer().batch([digits, "1 2 3 4 5 6"])
    assert prompt.places[0].tolist() == list(range(MAX_PLACE + 8, 0, -1))
    torch.manual_seed(0)
    controller = ckpt.build_machine(small_run_config()).controller
    emb = controller.prompt_embedding(prompt)[0]  # (L, d): the same digit, so only the place differs
    assert all(torch.allclose(emb[k], emb[8]) for k in range(9)) and not torch.allclose(emb[8], emb[9])
    numbers = [n for n in prompt.numbers[1].tolist() if n]
    assert numbers == [1, 2, 3, MAX_NUMBERS, MAX_NUMBERS, MAX_NUMBERS]


class _SlowCharTokenizer:
    """A slow (pure Python) HF tokenizer, one token per character: it gives no offset mapping."""

    def __new__(cls):  # built lazily so that importing this module does not import transformers
        from transformers import PreTrainedTokenizer

        class CharTokenizer(PreTrainedTokenizer):
            def __init__(self) -> None:
                self.vocab = {"<pad>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate("0123456789 +")}}
                super().__init__(pad_token="<pad>", unk_token="<unk>")

            @property
            def vocab_size(self) -> int:
                return len(self.vocab)

            def get_vocab(self) -> dict[str, int]:
                return dict(self.vocab)

            def _tokenize(self, text: str) -> list[str]:
                return list(text)

            def _convert_token_to_id(self, token: str) -> int:
                return self.vocab.get(token, 1)

            def _convert_id_to_token(self, index: int) -> str:
                return {v: k for k, v in self.vocab.items()}.get(index, "<unk>")

            def convert_tokens_to_string(self, tokens: list[str]) -> str:
                return "".join(tokens)

        return CharTokenizer()


def test_slow_tokenizer_gets_place_values_from_decoding() -> None:
    slow = PromptTokenizer(_SlowCharTokenizer())
    assert not slow.hf.is_fast
    ids, places, numbers = slow.encode("12 + 345")
    assert len(ids) == 8
    assert (places, numbers) == digit_places("12 + 345")  # one token per character
