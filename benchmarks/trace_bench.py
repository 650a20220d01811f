"""Trace recording, file and store figures (printed; not timed tests).

    OMP_NUM_THREADS=1 python benchmarks/trace_bench.py

1. recording overhead: a free-running episode with record=True plus building its trace, against
   the same episode unrecorded (target: at most +10 %);
2. a 20-digit addition trace: file size (target < 5 MB) and load_trace time (target < 0.3 s);
3. a store with 10,000 indexed traces: listing and filtering time (target < 0.5 s).

The machine is the untrained tiny preset: it never halts, so each episode runs to the step limit,
the longest (and largest) trace a problem of that size can give.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llamacpu.checkpoint import RunConfig, build_machine
from llamacpu.evaluate import free_run
from llamacpu.tasks import AdditionTask
from llamacpu.trace import TraceStore, encode_memory, load_trace, new_meta, save_trace, trace_from_run


def timed(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def recording_overhead(machine, task, digits: int, repeat: int) -> None:
    """Plain and recorded episodes alternate and the overhead is the median of the paired ratios:
    the cores may be shared (a training run), and a pair run back to back sees the same load."""
    programs = [task.compile(*task.sample(random.Random(digits), digits), machine.isa)]
    plain, recorded = [], []
    for _ in range(repeat):
        plain.append(timed(lambda: free_run(machine, programs), 1))
        recorded.append(timed(lambda: trace_from_run(machine, free_run(machine, programs, record=True), 0), 1))
    steps = int(free_run(machine, programs).execution.steps[0])
    ratio = statistics.median(r / p for p, r in zip(plain, recorded))
    print(f"recording, {digits:2d} digits ({steps:3d} steps): plain {statistics.median(plain) * 1e3:7.1f} ms, "
          f"recorded + trace built {statistics.median(recorded) * 1e3:7.1f} ms (medians), "
          f"overhead {100 * (ratio - 1):+5.1f} % (median of {repeat} paired ratios)")


def trace_file(machine, task, digits: int, folder: Path) -> None:
    a, b = task.sample(random.Random(7), digits)
    trace = trace_from_run(machine, free_run(machine, [task.compile(a, b, machine.isa)], record=True), 0)
    path = folder / f"trace-{digits}.pt"
    save_time = timed(lambda: save_trace(trace, path), 3)
    load_time = timed(lambda: load_trace(path), 5)
    mem = trace["exec"]["memory"]
    raw = mem.numel() * mem.element_size()
    packed = encode_memory(mem)
    kept = packed["value"].numel() * 2 + packed["base"].numel() * 2
    print(f"{digits}-digit trace ({trace['meta']['steps']} steps, window {trace['meta']['window']}): "
          f"file {path.stat().st_size / 1e6:.2f} MB (memory [T+1, W, D] is {raw / 1e6:.2f} MB raw, "
          f"{kept / 1e6:.2f} MB as changed rows), save {save_time * 1e3:.0f} ms, load {load_time * 1e3:.0f} ms")


def store_listing(folder: Path, n: int) -> None:
    store = TraceStore(folder / "store", create=True)
    rng = random.Random(0)
    rows = []
    for i in range(n):
        digits = rng.randint(1, 20)
        rows.append((f"t{i:05d}.pt", new_meta(task="add", prompt=f"{i} + {i}", digits=digits, expected=2 * i,
                                               produced=2 * i if rng.random() < 0.8 else -1,
                                               correct=rng.random() < 0.8, halted=True, steps=4 * digits + 2,
                                               stage=digits, training_step=i * 10, run="bench",
                                               probe_id=f"probe{i % 16}" if i % 3 == 0 else None)))
    start = time.perf_counter()
    store._insert(rows)
    insert = time.perf_counter() - start
    opened = timed(lambda: TraceStore(store.root), 5)
    listing = timed(lambda: store.rows(), 5)
    failing = timed(lambda: store.rows(failing=True, digits=5), 5)
    probe = timed(lambda: store.rows(probe_id="probe3"), 5)
    print(f"store with {store.count()} indexed traces: index {insert * 1e3:.0f} ms, open {opened * 1e3:.1f} ms, "
          f"list all {listing * 1e3:.1f} ms, --failing --digits 5 {failing * 1e3:.1f} ms "
          f"({len(store.rows(failing=True, digits=5))} rows), --probe {probe * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--store-size", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    machine = build_machine(RunConfig())
    task = AdditionTask()
    free_run(machine, [task.compile(1, 2, machine.isa)], record=True)  # warm-up
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, tiny preset (untrained)")
    for digits in (3, 10, 20):
        recording_overhead(machine, task, digits, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        trace_file(machine, task, 20, Path(tmp))
        store_listing(Path(tmp), args.store_size)


if __name__ == "__main__":
    main()
