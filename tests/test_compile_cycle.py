"""One execute cycle as one function: the teacher's draws made up front, and the cycle compiled whole.

The training step of a small controller on a GPU is bound by the host's operator calls (about
28 000 a step for tiny at batch 64, 4 digits), not by the GPU's kernels; ``compile_scope="cycle"``
compiles each execute cycle, forward and backward, into a few fused kernels.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu.controller import Controller
from llamacpu.machine import Machine, Teacher
from llamacpu.tasks.base import IGNORE


def test_teacher_choices_are_the_draws_the_cycles_made_one_at_a_time() -> None:
    """Step by step, PC before result, each draw for the whole batch and this share's rows kept:
    the order the cycles drew them in before they were drawn up front, so seeded runs are unchanged."""
    b, t, first, whole = 3, 5, 2, 6
    pc = torch.randint(0, 9, (b, t))
    pc[1, 3:] = IGNORE  # an episode past its end
    result = torch.randint(0, 9, (b, t))
    teacher = Teacher(pc, result, p_pc=0.5, p_result=0.3, generator=torch.Generator().manual_seed(7),
                      rows_of=(first, whole))
    use_pc, use_result = teacher.choices(t, torch.device("cpu"))

    gen = torch.Generator().manual_seed(7)
    want_pc, want_result = [], []
    for step in range(t):
        want_pc.append((torch.rand(whole, generator=gen)[first: first + b] < 0.5) & (pc[:, step] != IGNORE))
        want_result.append(torch.rand(whole, generator=gen)[first: first + b] < 0.3)
    assert torch.equal(use_pc, torch.stack(want_pc)) and torch.equal(use_result, torch.stack(want_result))
    assert not use_pc[3:, 1].any() and use_pc.any() and not use_pc.all()
    assert torch.equal(teacher.generator.get_state(), gen.get_state())


def test_a_teacher_that_never_substitutes_draws_nothing() -> None:
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    teacher = Teacher(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), generator=gen)
    assert teacher.choices(4, torch.device("cpu")) == (None, None)
    assert torch.equal(gen.get_state(), before)


def test_a_refused_compile_scope_names_the_scopes() -> None:
    from machine_fixtures import small_train_config

    with pytest.raises(ckpt.RunError, match="compile_scope='whole' is not one of 'layers', 'cycle'"):
        small_train_config(compile="default", compile_scope="whole")
    with pytest.raises(ckpt.RunError, match="compile_scope='cycle' does not recompute"):
        small_train_config(compile="default", compile_scope="cycle", recompute=True)
    small_train_config(compile="", compile_scope="cycle", recompute=True)  # nothing compiled: recompute as asked
    with pytest.raises(ckpt.RunError, match="compile='cudagraphs' needs compile_scope='cycle'"):
        small_train_config(compile="cudagraphs")


def test_compile_scope_cycle_compiles_the_cycle_and_leaves_the_layers(tmp_path: Path) -> None:
    """Nothing compiles until the first step runs, so this costs no compilation."""
    from llamacpu.train import decoder_layers
    from machine_fixtures import make_trainer, small_run_config, small_train_config

    train = small_train_config(compile="default", compile_scope="cycle")
    trainer = make_trainer(tmp_path / "run", small_run_config(train=train))
    assert trainer.machine._compiled_cycle is not None
    layers = decoder_layers(trainer.machine.controller.backbone)
    assert layers and all(getattr(m, "_compiled_call_impl", None) is None for m in layers)
    eager = make_trainer(tmp_path / "eager", small_run_config())
    assert eager.machine._compiled_cycle is None


@pytest.mark.slow
def test_a_compiled_cycle_traces_whole_and_trains_as_the_eager_one(tmp_path: Path) -> None:
    """The cycle traced as one graph (``fullgraph``: a break would raise), through AOTAutograd
    (the ``aot_eager`` backend runs the traced forward and backward graphs without generating
    kernels, so this runs in seconds on any CPU): the same losses step for step as eager, with
    teacher forcing on; evaluation, without gradients, stays eager."""
    from llamacpu.evaluate import evaluate
    from machine_fixtures import make_trainer, small_run_config, small_train_config

    runs = {}
    for mode in ("eager", "aot_eager"):
        trainer = make_trainer(tmp_path / mode, small_run_config(train=small_train_config(max_digits=2, batch_size=6)))
        trainer.stage = 2
        calls = []
        if mode != "eager":
            trainer.machine.compile_cycle(backend=mode)
            compiled = trainer.machine._compiled_cycle
            trainer.machine._compiled_cycle = lambda *args, f=compiled: (calls.append(1), f(*args))[1]
        runs[mode] = [trainer.train_step()["loss_total"] for _ in range(3)]
    assert trainer.config.tf_start > 0  # the teacher's substitutions are in the graph
    assert runs["aot_eager"] == pytest.approx(runs["eager"], rel=1e-5)
    n = len(calls)
    assert n >= 3  # every cycle of every step
    evaluate(trainer.machine, trainer.task, 2, 4, seed=0, diagnostics=False)
    assert len(calls) == n


@pytest.mark.slow
def test_compile_cudagraphs_trains_as_eager_and_marks_every_step(tmp_path: Path, monkeypatch) -> None:
    """``compile="cudagraphs"`` (torch.compile's backend of that name: AOTAutograd's graphs replayed
    as CUDA graphs, no kernels generated) through the run's config: the same losses as eager, and
    every step marked as a new one, so that the graphs may reuse the last step's memory. On a CPU
    the backend runs its graphs without CUDA graphs, which is what this checks."""
    from machine_fixtures import make_trainer, small_run_config, small_train_config

    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    runs = {}
    for mode in ("", "cudagraphs"):
        train = small_train_config(max_digits=2, batch_size=6, compile=mode, compile_scope="cycle")
        trainer = make_trainer(tmp_path / (mode or "eager"), small_run_config(train=train))
        trainer.stage = 2
        runs[mode] = [trainer.train_step()["loss_total"] for _ in range(3)]
        assert len(marks) == (3 if mode else 0)
    assert trainer.machine._compiled_cycle is not None
    assert runs["cudagraphs"] == pytest.approx(runs[""], rel=1e-5)


def test_a_compiled_cycle_takes_python_floats_as_constants(tmp_path: Path) -> None:
    """With dynamic shapes dynamo passes a Python float (the read sharpness, RMSNorm's epsilon,
    attention's scale) as a 0-d float64 tensor on the CPU, and a graph with a CPU input is never
    captured as a CUDA graph: on the H100 the cudagraphs backend skipped every graph for the read
    sharpness and ran 1.5 times slower than eager (session 37). The cycle's graph takes none."""
    from machine_fixtures import make_trainer, small_run_config, small_train_config

    inputs: list = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        inputs.extend(example_inputs)
        return gm.forward

    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(max_digits=1, batch_size=4)))
    trainer.machine.compile_cycle(backend=backend)
    assert torch.isfinite(torch.tensor(trainer.train_step()["loss_total"]))
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    assert tensors and [tuple(x.shape) for x in tensors if x.dim() == 0] == []


@pytest.mark.parametrize("fn", [Machine._cycle, Machine._control, Machine.attend, Controller.next_pc,
                                Controller._run], ids=lambda f: f.__qualname__)
def test_what_a_compiled_cycle_traces_imports_nothing(fn) -> None:
    """An import inside a traced function stops dynamo where a module is lazy: torch 2.11 on the
    H100 could not trace next_pc's `from transformers import DynamicCache` ("Bad import result",
    session 36), though this machine's torch traces it. The cycle's functions take what they need
    from their module's top or from the controller (``Controller._cache_class``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    imports = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports == []


@pytest.mark.slow
def test_a_compiled_cycle_compiles_once_for_every_stage(tmp_path: Path) -> None:
    """One graph for the whole curriculum: the window (it grows with every stage), the first cycle
    and the teacher's per-cycle rows each made dynamo compile the cycle again (session 36: three
    graphs a stage, then `recompile_limit`'s hard failure under fullgraph at stage 3). With the
    limit at 1, any recompilation fails the step."""
    from machine_fixtures import make_trainer, small_run_config, small_train_config

    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(max_digits=3, batch_size=6)))
    trainer.machine.compile_cycle(backend="aot_eager")
    assert trainer.config.tf_start > 0  # the teacher's rows go into every cycle
    windows = []
    with torch._dynamo.config.patch(recompile_limit=1):
        for stage in (1, 2, 3, 1):
            trainer.stage = stage
            windows.append(trainer.task.slots_needed(trainer.stage_size))
            assert torch.isfinite(torch.tensor(trainer.train_step()["loss_total"]))
    assert len(set(windows)) == 3


def test_per_shape_builds_one_function_a_shape_and_keys_before_the_call() -> None:
    from llamacpu.cuda_graphs import PerShape, shape_key

    built: list[tuple] = []

    def make(inputs: list) -> object:
        key = shape_key(inputs)
        built.append(key)

        def run(args: list) -> list:
            assert shape_key(args) == key  # a recorded graph takes only its own shapes
            out = [args[0] + 1]
            args.clear()  # as CUDA graph trees free the inputs they copied
            return out

        return run

    fn = PerShape(make)
    for n in (3, 3, 5, 3, 5, 7):
        out = fn([torch.zeros(2, n), torch.ones(n)])
        assert out[0].shape == (2, n) and torch.equal(out[0], torch.ones(2, n))
    assert built == [((2, 3), (3,)), ((2, 5), (5,)), ((2, 7), (7,))]
    fn([torch.zeros(2, 3), 4])
    fn([torch.zeros(2, 3), 5])
    assert built[3:] == [((2, 3), 4), ((2, 3), 5)]  # an integer input (a symbolic size) is part of the key


@pytest.mark.slow
def test_cudagraphs_records_a_graph_for_every_stage_shape_from_one_trace(tmp_path: Path, monkeypatch) -> None:
    """Each stage's window and prompt are longer, and one trace (dynamic shapes) serves them all; a
    CUDA graph, though, replays only the shapes it was recorded with (session 38 on the H100: torch's
    backend replayed stage 1's graph for stage 2's prompts and failed). CUDA graph trees are stood in
    for by a recorder that refuses other shapes, and the backend's device checks are told the graph
    is on a GPU: one recording a shape, forward and backward, the losses as eager's, one trace."""
    from torch._dynamo.backends import cudagraphs as stock
    from torch._inductor import cudagraph_trees

    from machine_fixtures import make_trainer, small_run_config, small_train_config

    def shapes(xs: list) -> tuple:
        return tuple(tuple(x.shape) if isinstance(x, torch.Tensor) else x for x in xs)

    recorded: list[tuple[bool, tuple]] = []

    def record(model, inputs, static_input_idxs, *, is_backward: bool, **_: object):
        key = shapes(inputs)
        recorded.append((is_backward, key))

        def replay(args: list) -> object:
            assert shapes(args) == key, "a graph replayed for other shapes"
            return model(args)

        return replay

    monkeypatch.setattr(cudagraph_trees, "cudagraphify_impl", record)
    monkeypatch.setattr(stock, "check_for_skip", lambda *_: None)
    monkeypatch.setattr(stock, "get_device_index", lambda *_: 0)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)
    torch._dynamo.reset()  # no cycle compiled by an earlier test (on the CPU: no CUDA graphs) is reused
    losses = {}
    for mode in ("", "cudagraphs"):
        train = small_train_config(max_digits=3, batch_size=6, compile=mode, compile_scope="cycle")
        trainer = make_trainer(tmp_path / (mode or "eager"), small_run_config(train=train))
        torch._dynamo.utils.counters.clear()
        losses[mode] = []
        for stage in (1, 2, 3, 1):
            trainer.stage = stage
            losses[mode] += [trainer.train_step()["loss_total"] for _ in range(2)]
    assert trainer.machine._compiled_cycle is not None
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # one trace for every stage
    assert losses["cudagraphs"] == pytest.approx(losses[""], rel=1e-5)
    assert len(set(recorded)) == len(recorded)  # a shape is recorded once, forward and backward
    forward = {k for b, k in recorded if not b}
    backward = {k for b, k in recorded if b}
    assert len(forward) >= 3 and len(backward) >= 3  # every stage's shape its own graph, stage 1's replayed
