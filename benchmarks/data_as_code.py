"""Executing data as code, measured: jumps into slots that are not instructions, on a trained CPU.

A family of programs like examples/faults/jump-to-data.s: ``z = x + y``, then ``JMP`` to a slot that is
not an instruction (DATA x, y or z, an OPDEF of the operator library, an EMPTY slot, the REG slot),
then ``HALT``. Each is run on the machine (default: the shipped general CPU) for a few cycles, and
:func:`llamacpu.data_as_code.data_steps` reads off what the cycles on non-instructions did.

    python benchmarks/data_as_code.py [--run DIR] [--steps 24] [--out benchmarks/results/data_as_code_cpu.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from llamacpu.asm import parse, run_program
from llamacpu.checkpoint import load_machine
from llamacpu.data_as_code import data_steps
from llamacpu.run_folder import shipped_run

TARGETS = {"DATA x": 20, "DATA y": 21, "DATA z": 22, "OPDEF ADD": 1, "EMPTY": 5, "REG": 0}


def program(x: int, y: int, target: int) -> str:
    return "\n".join([
        "0000  REG    pc -> 0000", "0001  OPDEF  ADD", "0002  OPDEF  JMP", "0003  OPDEF  HALT",
        "0010  INST   ADD [0020], [0021] -> [0022]", f"0011  INST   JMP -> {target:04d}", "0012  INST   HALT",
        f"0020  DATA   {x}", f"0021  DATA   {y}", "0022  DATA   0"])


def measure(machine, target: int, steps: int) -> dict:
    rows = Counter()
    first_ops: Counter = Counter()
    for x in range(10):
        for y in range(10):
            asm = parse(program(x, y, target), machine.isa)
            trace = run_program(machine, asm, max_steps=steps)
            ds = data_steps(trace, machine.isa)
            pc = trace["exec"]["pc"].float().argmax(-1)
            rows["programs"] += 1
            rows["z_right"] += int(trace["exec"]["memory"][-1].float()[22, machine.isa.content_slice].argmax()) == x + y
            rows["followed_jump"] += int(pc.numel() > 2 and int(pc[2]) == target)
            rows["ran_non_inst"] += int(bool(ds))
            rows["halted"] += int(trace["meta"]["halted"])
            if ds:
                d = ds[0]
                first_ops[f"{d.opcode}({d.a},{d.b})->{d.dst:04d} from op@{d.op_addr:04d}"] += 1
                rows["first_reads_reg"] += int(d.op_addr == 0 and d.src1 == 0 and d.src2 == 0 and d.dst == 0)
                rows["first_wrote"] += int(d.wrote)
                rows["reg_overwritten"] += int(d.reg_overwritten)
                rows["non_inst_cycles"] += len(ds)
    return {**rows, "first_non_inst_cycle": dict(first_ops.most_common(5))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/data_as_code_cpu.json"))
    args = ap.parse_args()
    run = args.run or shipped_run()
    machine, _, _ = load_machine(run)
    results = {name: measure(machine, addr, args.steps) for name, addr in TARGETS.items()}
    out = {"run": run.name, "steps": args.steps, "programs_per_target": 100, "targets": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
