"""Length generalization's machinery: position tags shared by places and block pages, random
tag offsets in training, no RoPE, absolute pointers limited to the header, and a memory that
grows at evaluation (docs/length-generalization.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu.controller import HEADER_PAGES, ControllerConfig, ControllerError
from llamacpu.evaluate import evaluate
from llamacpu.train import batch_losses

from machine_fixtures import assert_one_clear_line, make_trainer, run_cli, small_run_config

TAGGED = {"position_offsets": 50, "rope": False, "absolute_slots": 20}


def tagged_machine(n_slots: int = 60, **controller):
    torch.manual_seed(0)
    return ckpt.build_machine(small_run_config(n_slots=n_slots, **{**TAGGED, **controller}))


def test_block_page_and_place_share_one_tag():
    """Page 2 (digit block 0) carries the units' tag, page 2 + i the tag of place i + 1, and the
    episode's shift moves both: the plan query of a block and the digits it reads meet in one row."""
    machine = tagged_machine()
    ctrl = machine.controller
    prompt = ctrl.tokenizer.batch(["47 + 385"])
    prompt.shift = torch.tensor([7])
    emb = ctrl.prompt_embedding(prompt) - ctrl.backbone.get_input_embeddings()(prompt.ids).float() \
        - ctrl.number_emb(prompt.numbers)  # (1, L, d): the tags alone
    chars = list("47 + 385")
    units_of_385 = len(chars) - 1
    assert torch.allclose(emb[0, units_of_385], ctrl.place_emb.weight[1 + 7])
    addr = ctrl.address_embedding(60, torch.device("cpu"), prompt.shift)  # (1, W, d)
    offset = ctrl.offset_emb.weight
    for page_no in range(HEADER_PAGES, 6):
        tag = page_no - (HEADER_PAGES - 1) + 7
        want = ctrl.page_emb.weight[HEADER_PAGES] + ctrl.place_emb.weight[tag] + offset[3]
        assert torch.allclose(addr[0, page_no * 10 + 3], want, atol=1e-6)
    assert torch.allclose(addr[0, 13], ctrl.page_emb.weight[1] + offset[3])  # a header page has no tag


def test_weights_do_not_depend_on_the_memory_size():
    small, large = tagged_machine(60), tagged_machine(400)
    shapes = {n: t.shape for n, t in ckpt.trainable_state(small).items()}
    assert shapes == {n: t.shape for n, t in ckpt.trainable_state(large).items()}
    assert torch.equal(large.isa.keys[:60], small.isa.keys)  # new addresses, same scheme


def test_absolute_pointers_reach_only_the_first_slots():
    """With the mix all absolute, a 120-slot plan points into the first 20 slots only."""
    machine = tagged_machine(120)
    for head in machine.controller.pointer_heads:
        assert head.absolute.out_features == 20
        with torch.no_grad():
            head.mix.bias.fill_(50.0)  # g = 1: the absolute part alone
    plan = machine.controller.plan(machine.controller.tokenizer.batch(["12 + 34"]), 120)
    assert plan.pointers.shape[-1] == 120
    assert torch.allclose(plan.pointers[..., :20].sum(-1), torch.ones(1), atol=1e-5)
    assert float(plan.pointers[..., 20:].detach().abs().max()) < 1e-6


def test_without_rope_every_position_id_is_zero(monkeypatch):
    machine = tagged_machine()
    seen = []
    forward = type(machine.controller.backbone).forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs["position_ids"])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(machine.controller.backbone), "forward", spy)
    machine.controller.plan(machine.controller.tokenizer.batch(["5 + 7", "123 + 4"]), 60)
    assert seen and all(bool((p == 0).all()) for p in seen)


def test_training_draws_each_episodes_offset_from_the_seeded_generator(tmp_path):
    """Offsets in 0..position_offsets, one per episode, from the checkpointed generator (so a
    resumed run draws the same ones); evaluation uses none."""
    trainer = make_trainer(tmp_path / "run", small_run_config(**TAGGED))
    drawn = []
    original = trainer.machine.controller.prompt_embedding

    def spy(prompt):
        drawn.append(prompt.shift)
        return original(prompt)

    trainer.machine.controller.prompt_embedding = spy
    trainer.config = trainer.config.__class__(**{**trainer.config.__dict__, "batch_size": 64})
    batch = trainer.sample_batch()
    batch_losses(trainer.machine, batch, 0.5, torch.Generator().manual_seed(3), 16)
    first = drawn[-1]
    assert first.shape == (64,) and int(first.min()) >= 0 and int(first.max()) <= 50 and len(set(first.tolist())) > 10
    batch_losses(trainer.machine, batch, 0.5, torch.Generator().manual_seed(3), 16)
    assert torch.equal(drawn[-1], first)
    evaluate(trainer.machine, trainer.task, 1, 2, seed="x")
    assert drawn[-1] is None


def test_a_growable_run_evaluates_past_its_memory(tmp_path):
    """A 2-digit memory; `eval --digits 6` grows it and says so on stderr."""
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(n_slots=48, **TAGGED))
    trainer.run(max_steps=1)
    trainer.save()
    result = run_cli(["eval", "--run", str(run), "--digits", "6", "--trials", "2", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "memory grown to 88 slots" in result.stderr
    assert '"digits": 6' in result.stdout
    ran = run_cli(["run", "--run", str(run), "123456 + 654321", "--json"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["expected"] == 777777


def test_a_run_whose_weights_need_its_memory_size_is_refused_a_larger_one(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(n_slots=48))
    trainer.run(max_steps=1)
    trainer.save()
    with pytest.raises(ckpt.RunError, match="cannot run in 88"):
        ckpt.load_machine(run, n_slots=88)
    result = run_cli(["eval", "--run", str(run), "--digits", "6", "--trials", "2"], tmp_path)
    assert_one_clear_line(result, "6-digit add needs up to 88 slots")


def test_resuming_with_a_new_runs_option_is_one_clear_line(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(**TAGGED))
    trainer.run(max_steps=1)
    trainer.save()
    result = run_cli(["train", "--run", str(run), "--no-rope", "--max-steps", "2"], tmp_path)
    assert_one_clear_line(result, "--no-rope shapes a new run")
    result = run_cli(["train", "--run", str(run), "--plan-attention", "prompt", "--max-steps", "2"], tmp_path)
    assert_one_clear_line(result, "--plan-attention shapes a new run")


def test_query_isolating_mask_by_hand():
    """Two prompt tokens (the first left padding) and two queries: the prompt causal over its
    tokens, each query on the prompt and itself, every row on itself (no row masked whole)."""
    from llamacpu.controller import query_isolating_mask

    allowed = query_isolating_mask(torch.tensor([[0, 1]]), 2, "sdpa", torch.float32)
    assert allowed.shape == (1, 1, 4, 4)
    assert allowed[0, 0].int().tolist() == [[1, 0, 0, 0],
                                            [0, 1, 0, 0],
                                            [0, 1, 1, 0],
                                            [0, 1, 0, 1]]
    additive = query_isolating_mask(torch.tensor([[0, 1]]), 2, "eager", torch.float32)
    assert torch.equal(additive[0, 0] == 0, allowed[0, 0])
    assert float(additive.min()) == torch.finfo(torch.float32).min


def test_isolated_plan_queries_do_not_see_each_other():
    """With plan_attention="prompt" a slot's plan does not depend on how many slots follow or
    precede it: the first 60 slots of a 120-slot plan are those of a 60-slot plan, and moving
    one query's embedding changes its own slot only."""
    machine = tagged_machine(120, plan_attention="prompt", plan_positions="coupled", rope=True)
    ctrl = machine.controller.eval()
    prompt = ctrl.tokenizer.batch(["47 + 385", "6 + 1"])
    short, long = ctrl.plan(prompt, 60), ctrl.plan(prompt, 120)
    assert torch.allclose(short.type_logits, long.type_logits[:, :60], atol=1e-5)
    assert torch.allclose(short.content_logits, long.content_logits[:, :60], atol=1e-5)
    causal = tagged_machine(120, plan_positions="coupled", rope=True).controller.eval()
    c_short, c_long = causal.plan(prompt, 60), causal.plan(prompt, 120)
    assert torch.allclose(c_short.type_logits, c_long.type_logits[:, :60], atol=1e-5)  # causal: later queries unseen too ...
    with torch.no_grad():
        causal.offset_emb.weight[0] += 1.0  # ... but earlier ones are: move the queries at offset 0
        ctrl.offset_emb.weight[0] += 1.0
    moved, c_moved = ctrl.plan(prompt, 60), causal.plan(prompt, 60)
    offset = torch.arange(60) % 10
    assert torch.allclose(moved.type_logits[:, offset != 0], short.type_logits[:, offset != 0], atol=1e-5)
    assert not torch.allclose(c_moved.type_logits[:, offset != 0], c_short.type_logits[:, offset != 0], atol=1e-3)


def test_local_plan_attention_is_the_same_at_any_length():
    """With local attention of reach 0, the header pages and the pages of places 1 and 2 plan the
    same slots for "12 + 34" and "99912 + 88834": nothing they see differs (tokens of the same
    coupled position only), however long the numbers grow."""
    machine = tagged_machine(120, plan_attention="local", plan_positions="coupled", rope=True, plan_reach=0)
    ctrl = machine.controller.eval()
    short = ctrl.plan(ctrl.tokenizer.batch(["12 + 34"]), 60)
    long = ctrl.plan(ctrl.tokenizer.batch(["99912 + 88834"]), 100)
    assert torch.allclose(short.type_logits[:, :40], long.type_logits[:, :40], atol=1e-5)
    assert torch.allclose(short.content_logits[:, :40], long.content_logits[:, :40], atol=1e-5)
    wide = tagged_machine(120, plan_attention="local", plan_positions="coupled", rope=True, plan_reach=3)
    w_short = wide.controller.eval().plan(ctrl.tokenizer.batch(["12 + 34"]), 60)
    w_long = wide.controller.plan(ctrl.tokenizer.batch(["99912 + 88834"]), 100)
    assert not torch.allclose(w_short.content_logits[:, 20:40], w_long.content_logits[:, 20:40], atol=1e-4)


def test_local_mask_by_hand():
    """Positions 0, 2, 1 then a query at 1, reach 1: the token at 2 does not see the one at 0."""
    from llamacpu.controller import query_isolating_mask

    allowed = query_isolating_mask(torch.tensor([[1, 1, 1]]), 1, "sdpa", torch.float32,
                                   torch.tensor([[0, 2, 1, 1]]), 1)
    assert allowed[0, 0].int().tolist() == [[1, 0, 0, 0],
                                            [0, 1, 0, 0],
                                            [1, 1, 1, 0],
                                            [1, 1, 1, 1]]
    with pytest.raises(ControllerError, match="coupled"):
        ControllerConfig(plan_attention="local")


def test_the_end_marker_moves_the_last_pages_queries_only():
    """With isolated queries, zeroing the marker changes the slots of the window's last page and
    no others (a 57-slot window: its last page is page 5, slots 50-56)."""
    machine = tagged_machine(60, plan_attention="prompt", end_marker=True)
    ctrl = machine.controller.eval()
    prompt = ctrl.tokenizer.batch(["47 + 385"])
    with torch.no_grad():
        ctrl.end_emb.mul_(50.0)
        marked = ctrl.plan(prompt, 57).type_logits
        ctrl.end_emb.zero_()
        plain = ctrl.plan(prompt, 57).type_logits
    differs = (marked - plain).abs().amax(-1)[0] > 1e-4  # (W,)
    assert differs[50:].all() and not differs[:50].any()


def test_coupled_positions_put_a_query_beside_its_digits(monkeypatch):
    """Coupled: a digit's rotary position is its place, other prompt tokens sit at 0, and the
    queries of block page p at p - 1, the place that page holds."""
    machine = tagged_machine(60, plan_positions="coupled", rope=True)
    ctrl = machine.controller
    seen = []
    forward = type(ctrl.backbone).forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs["position_ids"])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(ctrl.backbone), "forward", spy)
    ctrl.plan(ctrl.tokenizer.batch(["47 + 385"]), 60)
    pos = seen[-1][0].tolist()
    assert pos[:8] == [2, 1, 0, 0, 0, 3, 2, 1]  # "47 + 385"
    pages = [pos[8 + page * 10: 8 + page * 10 + 10] for page in range(6)]
    assert pages == [[0] * 10, [0] * 10] + [[p - 1] * 10 for p in range(2, 6)]
    ctrl.encode_prompt(ctrl.tokenizer.batch(["47 + 385"]))  # the execute phase's prompt: the same positions
    assert seen[-1][0].tolist() == pos[:8]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_isolated_plan_runs_under_either_attention(attn):
    """The mask is additive for eager attention and boolean for SDPA; both give one result."""
    from transformers import LlamaConfig, LlamaModel

    from llamacpu.controller import query_isolating_mask

    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, attn_implementation="eager")).eval()
    x = torch.randn(2, 7, 16)
    prompt_mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    want = model(inputs_embeds=x, attention_mask=query_isolating_mask(prompt_mask, 2, "eager", torch.float32))
    model.config._attn_implementation = attn
    got = model(inputs_embeds=x, attention_mask=query_isolating_mask(prompt_mask, 2, attn, torch.float32))
    assert torch.allclose(got.last_hidden_state[:, 1:], want.last_hidden_state[:, 1:], atol=1e-5)
    assert torch.isfinite(got.last_hidden_state).all()


def test_unknown_plan_modes_are_refused():
    with pytest.raises(ControllerError, match="plan positions"):
        ControllerConfig(plan_positions="absolute")
    with pytest.raises(ControllerError, match="plan attention"):
        ControllerConfig(plan_attention="bidirectional")


def test_negative_offsets_are_refused():
    with pytest.raises(ControllerError, match="counts"):
        ControllerConfig(position_offsets=-1)



def test_shift_distribution_one_offset_at_a_time_matches_all_at_once(monkeypatch):
    """A plan over thousands of slots shifts one offset at a time (the all-at-once tensor of a
    1000-digit plan would be 80 GB); both ways give the same distribution."""
    from llamacpu import memory

    torch.manual_seed(0)
    base = torch.softmax(torch.randn(6, 50), -1)
    offsets = torch.softmax(torch.randn(6, 9), -1)
    at_once = memory.shift_distribution(base, offsets, 4)
    monkeypatch.setattr(memory, "UNFOLD_LIMIT", 0)
    assert torch.allclose(memory.shift_distribution(base, offsets, 4), at_once, atol=1e-6)
    one_hot = torch.zeros(1, 50)
    one_hot[0, 10] = 1.0
    moved = memory.shift_distribution(one_hot, torch.eye(9)[[6]], 4)  # offset +2
    assert int(moved.argmax()) == 12


RUNS = Path(__file__).parent.parent / "llamacpu" / "runs"  # the shipped trained runs
SHIPPED = RUNS / "add-lengthgen"


def test_the_shipped_lengthgen_run_plans_far_past_its_training():
    """llamacpu/runs/add-lengthgen trained on at most 8 digits: its plans for held-out 40-digit
    problems (five times the trained length) equal the compiler's images, memory grown to fit."""
    from llamacpu.evaluate import draw_held_out, plan_exact
    from llamacpu.tasks import collate, get_task

    task = get_task("add")
    machine, config, _ = ckpt.load_machine(SHIPPED, n_slots=task.slots_needed(40))
    assert config.train["max_digits"] == 8 and config.controller.plan_attention == "local"
    machine.eval()
    programs = [task.build(p, machine.isa) for p in draw_held_out(task, 40, 10, "shipped-40")]
    batch = collate(programs, machine.isa)
    with torch.no_grad():
        plan = machine.plan(machine.controller.tokenizer.batch(batch.prompts), batch.window)
    assert sum(plan_exact(plan, batch)) >= 9


def test_the_shipped_lengthgen_run_adds_past_its_training(tmp_path):
    """Free running, 12-digit held-out problems (never trained): eval's answers are right."""
    result = run_cli(["eval", "--run", str(SHIPPED), "--digits", "12", "--trials", "10", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "outside the trained range" in result.stderr
    record = json.loads(result.stdout)["results"][0]
    assert record["digits"] == 12 and record["correct"] >= 9


def test_eval_batches_shrink_with_the_problem_and_do_not_change_answers():
    """A batch holds 100 problems up to about 100 digits, one at 1000 (the plan's attention grows
    with the square of the window); free running does not depend on how problems are batched."""
    from llamacpu.evaluate import eval_batch_size
    from llamacpu.tasks import get_task

    task = get_task("add")
    assert eval_batch_size(task.slots_needed(8)) == 100
    assert eval_batch_size(task.slots_needed(100)) == 100
    assert eval_batch_size(task.slots_needed(300)) == 13
    assert eval_batch_size(task.slots_needed(1000)) == 1
    machine, _, _ = ckpt.load_machine(SHIPPED)
    machine.eval()
    together = evaluate(machine, task, 3, 12, seed="batching", diagnostics=False)
    apart = evaluate(machine, task, 3, 12, seed="batching", diagnostics=False, batch_size=5, keep_failures=True)
    assert (together.trials, together.correct, together.plan_exact) == (apart.trials, apart.correct, apart.plan_exact)


def test_eval_refuses_an_empty_batch(tmp_path):
    result = run_cli(["eval", "--run", str(SHIPPED), "--batch-size", "0"], tmp_path)
    assert_one_clear_line(result, "--batch-size must be at least 1")


MUL = RUNS / "mul-lengthgen"


def test_the_shipped_mul_run_multiplies_past_its_training():
    """llamacpu/runs/mul-lengthgen trained on at most 4 by 1 digits: free running on held-out
    7-digit problems (never trained, memory grown to fit), its answers are right."""
    from llamacpu.tasks import get_task

    task = get_task("mul")
    machine, config, _ = ckpt.load_machine(MUL, n_slots=task.slots_needed(7))
    assert config.train["task"] == "mul" and config.train["max_digits"] == 4
    machine.eval()
    result = evaluate(machine, task, 7, 10, seed="shipped-mul-7", diagnostics=False)
    assert result.trials == 10 and result.correct >= 9


REVERSE = RUNS / "reverse"


def test_the_shipped_reverse_run_reverses_eight_items():
    """llamacpu/runs/reverse, trained on 1-8 items with stage_lr_decay=0.8 (docs/experiments.md,
    "Session 27"): free running on held-out 8-item strings, its answers are right and its plans
    are the compiler's."""
    from llamacpu.tasks import get_task

    task = get_task("reverse")
    machine, config, _ = ckpt.load_machine(REVERSE, n_slots=task.slots_needed(8))
    assert config.train["task"] == "reverse" and config.train["max_digits"] == 8
    machine.eval()
    result = evaluate(machine, task, 8, 10, seed="shipped-reverse-8", diagnostics=False)
    assert result.trials == 10 and result.correct >= 9 and result.plan_exact >= 0.9


SEARCH = RUNS / "search"


def test_the_shipped_search_run_finds_in_seven_and_eight_items():
    """llamacpu/runs/search, trained on 1-8 items and continued at its seventh stage with the
    forgetting guard (docs/experiments.md, "Session 32"): free running on held-out 7- and 8-item
    searches, its answers are right and its plans are the compiler's. Size 7 is the one the run
    it continued had lost in stage 8 (7 of these 10 right, no plan exact)."""
    from llamacpu.tasks import get_task

    task = get_task("search")
    machine, config, _ = ckpt.load_machine(SEARCH, n_slots=task.slots_needed(8))
    assert config.train["task"] == "search" and config.train["max_digits"] == 8
    machine.eval()
    for items in (7, 8):
        result = evaluate(machine, task, items, 10, seed=f"shipped-search-{items}", diagnostics=False)
        assert result.trials == 10 and result.correct >= 9 and result.plan_exact >= 0.9, items
