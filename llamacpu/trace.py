"""Traces: one recorded episode as plain data, written to and read from a trace store.

A trace is a dict of schema :data:`SCHEMA` (see ``docs/traces.md``): ``meta``, ``isa``, the prompt,
``plan`` (one step per slot) and ``exec`` (one step per cycle). Memory is stored for the window of
``W`` slots that the problem uses; slots past it are EMPTY by construction.

Files are written by ``torch.save`` from dicts, lists, strings, numbers and tensors only and read
with ``torch.load(weights_only=True)``: a trace is untrusted input. On disk ``exec.memory`` is kept
as its changed rows (memory after the plan, then only the slots each step changed), which is
lossless and makes a 20-digit trace about 100 times smaller; :func:`load_trace` restores the
``[T+1, W, D]`` tensor, so readers never see the difference.

A :class:`TraceStore` is a folder of payload files plus an SQLite index. A payload is written to a
temporary file and renamed into place before its index row is inserted, so a killed writer never
leaves an indexed half-trace (at worst an unindexed payload, which :meth:`TraceStore.reindex`
picks up).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from llamacpu.errors import LlamaCPUError
from llamacpu.isa import ISA, OPCODES, op_table
from llamacpu.tasks.base import IGNORE

SCHEMA = "llamacpu.trace/1"
INDEX = "index.sqlite"
MEMORY_ENCODING = "changed-rows/1"


class TraceError(LlamaCPUError):
    """A trace file or trace store that cannot be used; the message names the path."""


# ---------------------------------------------------------------- building


def new_meta(**fields: Any) -> dict[str, Any]:
    """A ``meta`` dict with every schema key, defaults for those not given."""
    meta: dict[str, Any] = {
        "task": "", "prompt": "", "operands": [], "digits": 0, "expected": -1, "produced": -1,
        "correct": False, "halted": False, "steps": 0, "stage": None, "training_step": None,
        "run": None, "checkpoint": None, "controller": "", "seed": None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "probe_id": None,
        "window": 0, "roles": {}, "answer_slots": [], "mode": "plan+execute",
        "pc_modes": [],  # the control unit's addressing modes, in the order of exec.pc_mix's columns
    }
    unknown = set(fields) - set(meta)
    if unknown:
        raise ValueError(f"unknown trace meta fields: {sorted(unknown)}")
    meta.update(fields)
    return meta


def oeu_expected(oeu_in: torch.Tensor, n_values: int) -> torch.Tensor:
    """What the OEU should have produced from what it read, by the ISA's semantics.

    oeu_in: [T, 3, C] (opcode padded to C, a, b) -> [T] long, from the argmax of each input.
    """
    results = _op_results(n_values)
    op = oeu_in[:, 0, : len(OPCODES)].argmax(-1)
    return results[op, oeu_in[:, 1].argmax(-1), oeu_in[:, 2].argmax(-1)]


@lru_cache(maxsize=4)
def _op_results(n_values: int) -> torch.Tensor:
    """The ISA's operator table [OPS, C, C], built once per value range (it is 5,200 Python calls)."""
    return op_table(n_values)[0]


def exec_record(execution: Any, i: int, n_values: int, pc_target: torch.Tensor | None = None) -> dict[str, Any]:
    """The ``exec`` part of episode ``i`` of a recorded :class:`~llamacpu.machine.Execution`,
    cut to its own steps. pc_target: [T'] the task's PCs (padded with -1 or cut to T). ``pc_mix``
    [T, M] weighs the control unit's addressing modes (named in ``meta.pc_modes``)."""
    if execution.memories is None:
        raise ValueError("the execution was not recorded (execute(..., record=True))")
    t = int(execution.steps[i])
    f16 = torch.float16
    target = torch.full((t,), -1, dtype=torch.long)
    if pc_target is not None:
        k = min(t, pc_target.numel())
        target[:k] = pc_target[:k].cpu()
    oeu_in = execution.oeu_in[i, :t].detach().float().cpu()
    return {
        "pc": execution.pc[i, :t].detach().cpu().to(f16),
        "pc_target": target,
        "ptr_attn": execution.ptr_attn[i, :t].detach().cpu().to(f16),
        "oeu_in": oeu_in.to(f16),
        "oeu_out": torch.softmax(execution.oeu_logits[i, :t].detach().float().cpu(), -1).to(f16),
        "oeu_expected": oeu_expected(oeu_in, n_values) if t else torch.zeros(0, dtype=torch.long),
        "write_gate": execution.gate[i, :t].detach().cpu().to(f16),
        "halt": execution.halt[i, :t].detach().cpu().to(f16),
        "memory": execution.memories[i, : t + 1].detach().cpu().to(f16),
        **({} if execution.pc_mix is None else {"pc_mix": execution.pc_mix[i, :t].detach().float().cpu().to(f16)}),
    }


def reference_record(run: Any) -> dict[str, Any]:
    """The interpreter's run (:class:`llamacpu.interpreter.Run`) as plain data: the trace's
    ``reference`` (what the debugger lays the neural run beside)."""
    return {
        "pc": [int(x) for x in run.pc], "op": [OPCODES[o] for o in run.op], "results": [int(x) for x in run.results],
        "taken": [bool(x) for x in run.taken], "halted": bool(run.halted), "steps": int(run.steps),
        "writes": {f"{a:04d}": int(v) for a, v in sorted(run.written.items())}, "fault": run.fault,
    }


def plan_loss(plan: Any, batch: Any, i: int) -> torch.Tensor:
    """Per-slot plan loss of episode ``i`` (type + pointer + content cross-entropy) -> [W] float32."""
    types = batch.types[i]
    loss = F.cross_entropy(plan.type_logits[i].float(), types, reduction="none")  # (W,)
    contents = batch.contents[i]
    c_loss = F.cross_entropy(plan.content_logits[i].float(), contents.clamp(min=0), reduction="none")
    loss = loss + c_loss * (contents != IGNORE)
    ptr = batch.pointers[i]  # (W, P)
    p = plan.pointers[i].float().gather(-1, ptr.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (W, P)
    loss = loss + (-(p.clamp(min=1e-9).log()) * (ptr != IGNORE)).sum(-1)
    return loss.detach().cpu().float()


def traces_from_run(machine: Any, free: Any, **meta: Any) -> list[dict[str, Any]]:
    """One trace per episode of a recorded :class:`~llamacpu.evaluate.FreeRun`
    (``free_run(..., record=True)``). ``meta`` sets stage, training_step, run, checkpoint,
    seed, probe_id (the same for every episode; probe_id may also be a list, one per episode)."""
    probe_ids = meta.pop("probe_id", None)
    out = []
    for i, program in enumerate(free.batch.programs):
        probe = probe_ids[i] if isinstance(probe_ids, (list, tuple)) else probe_ids
        out.append(trace_from_run(machine, free, i, probe_id=probe, **meta))
    return out


def trace_from_run(machine: Any, free: Any, i: int, task: str = "add", **meta: Any) -> dict[str, Any]:
    """The trace of episode ``i`` of a recorded free run (``task``: the task's name). A program
    given as a memory image (no prompt) is recorded with its image as the plan."""
    from llamacpu import interpreter

    planned = free.batch.planned
    if free.execution.memories is None or (planned and free.plan.prompt_attn is None):
        raise ValueError("free_run(..., record=True) is needed to build a trace")
    isa: ISA = machine.isa
    program = free.batch.programs[i]
    keep = free.prompt.mask[i].bool().cpu()
    ids = free.prompt.ids[i].cpu()[keep]
    pieces = machine.controller.tokenizer.pieces(program.prompt)[1] if program.prompt else []
    w = program.window
    f16 = torch.float16
    execution = exec_record(free.execution, i, isa.layout.n_values, program.pc)
    if planned:
        plan = {
            "addr": torch.arange(w),
            "slot": free.plan.memory[i, :w].detach().cpu().to(f16),
            "target": free.batch.memory[i, :w].detach().cpu().to(f16),
            "prompt_attn": free.plan.prompt_attn[i, :w].detach().cpu()[:, keep].to(f16),
            "loss": plan_loss(free.plan, free.batch, i)[:w],
        }
    else:
        plan = {"addr": torch.arange(w), "slot": free.batch.memory[i, :w].detach().cpu().to(f16),
                "target": None, "prompt_attn": None, "loss": None}
    execution["memory"] = execution["memory"][:, :w]
    for key in ("pc", "ptr_attn"):
        execution[key] = execution[key][..., :w]
    ref = interpreter.run(interpreter.Image.from_targets(program.types, program.pointers, program.contents, IGNORE),
                          isa.layout.n_values, max(4 * program.steps, 16))
    fields = new_meta(
        task=task, prompt=program.prompt, operands=list(program.operands), digits=program.digits,
        expected=program.answer, produced=int(free.produced[i]), correct=bool(free.correct[i]),
        halted=bool(free.execution.halted[i]), steps=int(free.execution.steps[i]),
        controller=machine.controller.config.preset, window=w,
        roles={str(a): r for a, r in program.roles.items()},
        answer_slots=[int(a) for a in program.answer_slots.tolist()], mode="plan+execute" if planned else "image",
        pc_modes=list(machine.controller.config.pc_modes), **meta,
    )
    return {
        "schema": SCHEMA, "meta": fields, "isa": isa.to_dict(), "prompt_tokens": ids.long(),
        "prompt_pieces": list(pieces), "plan": plan, "exec": execution, "reference": reference_record(ref),
    }


# ---------------------------------------------------------------- validation


def validate(trace: Any, where: str = "trace") -> dict[str, Any]:
    """Check a trace's schema and shapes; raise :class:`TraceError` naming the first fault."""
    if not isinstance(trace, dict):
        raise TraceError(f"{where}: not a trace (holds a {type(trace).__name__}, not a dict)")
    schema = trace.get("schema")
    if schema != SCHEMA:
        raise TraceError(f"{where}: trace schema {schema!r}; this llamacpu reads {SCHEMA!r}")
    for key, kind in (("meta", dict), ("isa", dict), ("plan", dict), ("exec", dict),
                      ("prompt_tokens", torch.Tensor), ("prompt_pieces", list)):
        if not isinstance(trace.get(key), kind):
            raise TraceError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    meta, isa = trace["meta"], trace["isa"]
    try:
        layout = isa["layout"]
        w, n, d = int(meta["window"]), int(layout["n_slots"]), _slot_dim(layout)
        t, p, c = int(meta["steps"]), 4, int(layout["n_values"])
        keys = isa["keys"]
    except (KeyError, TypeError, ValueError) as err:
        raise TraceError(f"{where}: meta or isa is incomplete ({err})") from None
    if not isinstance(keys, torch.Tensor) or tuple(keys.shape) != (n, int(layout["key_dim"])):
        raise TraceError(f"{where}: isa.keys is not a [{n}, {layout['key_dim']}] tensor")
    if not 0 < w <= n:
        raise TraceError(f"{where}: window {w} is outside 1..{n}")
    plan, ex = trace["plan"], trace["exec"]
    s = plan["addr"].shape[0] if isinstance(plan.get("addr"), torch.Tensor) else -1
    length = int(trace["prompt_tokens"].shape[0])
    want = {
        ("plan", "addr"): (s,), ("plan", "slot"): (s, d), ("plan", "target"): (s, d),
        ("plan", "prompt_attn"): (s, length), ("plan", "loss"): (s,),
        ("exec", "pc"): (t, w), ("exec", "pc_target"): (t,), ("exec", "ptr_attn"): (t, p, w),
        ("exec", "oeu_in"): (t, 3, c), ("exec", "oeu_out"): (t, c), ("exec", "oeu_expected"): (t,),
        ("exec", "write_gate"): (t,), ("exec", "halt"): (t,), ("exec", "memory"): (t + 1, w, d),
    }
    optional = {("plan", "target"), ("plan", "prompt_attn"), ("plan", "loss")}
    for (part, key), shape in want.items():
        value = trace[part].get(key)
        if value is None and (part, key) in optional:
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TraceError(f"{where}: {part}.{key} is {got}, expected shape {shape}")
    return trace


def _slot_dim(layout: dict[str, Any]) -> int:
    return 5 + 4 * int(layout["key_dim"]) + int(layout["n_values"])


# ---------------------------------------------------------------- files


def encode_memory(memory: torch.Tensor) -> dict[str, Any]:
    """Memory after each step [T+1, W, D] -> its first image and the rows each step changed."""
    changed = (memory[1:] != memory[:-1]).any(-1)  # (T, W)
    step, slot = changed.nonzero(as_tuple=True)
    return {"encoding": MEMORY_ENCODING, "steps": memory.shape[0] - 1, "base": memory[0].clone(),
            "step": step, "slot": slot, "value": memory[1:][step, slot].clone()}


def decode_memory(packed: dict[str, Any], steps: int) -> torch.Tensor:
    """Inverse of :func:`encode_memory` -> [T+1, W, D]; ``steps`` (T) as the trace's meta says."""
    if packed.get("encoding") != MEMORY_ENCODING:
        raise ValueError(f"unknown memory encoding {packed.get('encoding')!r}")
    base, step, slot, value = packed["base"], packed["step"], packed["slot"], packed["value"]
    t = int(packed["steps"])
    if t != steps or base.dim() != 2 or step.shape != slot.shape or value.shape != (step.numel(), base.shape[1]):
        raise ValueError("its shapes disagree with each other or with meta.steps")
    if step.numel() and (int(step.min()) < 0 or int(step.max()) >= t or int(slot.min()) < 0
                         or int(slot.max()) >= base.shape[0]):
        raise ValueError("a changed row lies outside the memory")
    out = base.unsqueeze(0).repeat(t + 1, 1, 1)  # (T+1, W, D)
    bounds = torch.searchsorted(step, torch.arange(t + 1))  # rows of step k: bounds[k]:bounds[k+1]
    for k in range(t):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if k:
            out[k + 1] = out[k]
        if hi > lo:
            out[k + 1, slot[lo:hi]] = value[lo:hi]
    return out


def save_trace(trace: dict[str, Any], path: str | Path) -> Path:
    """Validate and write a trace atomically (temporary file, fsync, rename)."""
    validate(trace)
    path = Path(path)
    disk = dict(trace)
    disk["exec"] = dict(trace["exec"])
    disk["exec"]["memory"] = encode_memory(trace["exec"]["memory"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        with open(tmp, "wb") as f:
            torch.save(disk, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_payload(path: str | Path, mmap: bool = False) -> Any:
    """The checked first half of :func:`load_trace`: the file's plain data, nothing decoded or
    validated (the debugger uses it with ``mmap=True`` to restore memory lazily).

    Every way a file can be unusable (missing, a directory, empty, truncated, not a torch file,
    a pickle that would run code) raises :class:`TraceError` with one line naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, expected a trace file (.pt)")
    if path.stat().st_size == 0:
        raise TraceError(f"{path}: empty file, not a trace")
    if not zipfile.is_zipfile(path):
        raise TraceError(f"{path}: not a trace file (not a torch.save archive; truncated or another format)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, zip errors...
        text = str(err)
        if "Weights only load failed" in text or "weights_only" in text:
            raise TraceError(f"{path}: refused: it holds pickled objects that are not plain data "
                             "(loading them could run code)") from None
        raise TraceError(f"{path}: corrupt or truncated trace file ({type(err).__name__})") from None


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read and validate a trace file, memory restored to [T+1, W, D]. Never unpickles anything
    but plain data; an unusable file or another schema raises :class:`TraceError` (one line)."""
    data = read_payload(path)
    if isinstance(data, dict) and isinstance(data.get("exec"), dict) and isinstance(data["exec"].get("memory"), dict):
        try:
            data["exec"]["memory"] = decode_memory(data["exec"]["memory"], int(data["meta"]["steps"]))
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as err:
            raise TraceError(f"{path}: corrupt memory record ({err})") from None
    return validate(data, str(path))


def trace_isa(trace: dict[str, Any]) -> ISA:
    """The ISA a trace was recorded with."""
    try:
        return ISA.from_dict(trace["isa"])
    except (KeyError, TypeError, ValueError) as err:
        raise TraceError(f"trace ISA is unusable: {err}") from None


# ---------------------------------------------------------------- store


@dataclass(frozen=True)
class TraceRow:
    """One index row: what is needed to find a trace without opening it."""

    path: Path
    run: str | None
    stage: int | None
    training_step: int | None
    task: str
    problem: str
    digits: int
    expected: int
    produced: int
    correct: bool
    halted: bool
    steps: int
    probe_id: str | None
    mode: str
    created: str


_COLUMNS = ("path", "run", "stage", "training_step", "task", "problem", "digits", "expected", "produced",
            "correct", "halted", "steps", "probe_id", "mode", "created")
_CREATE = f"""
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL, run TEXT, stage INTEGER, training_step INTEGER, task TEXT,
    problem TEXT, digits INTEGER, expected INTEGER, produced INTEGER, correct INTEGER,
    halted INTEGER, steps INTEGER, probe_id TEXT, mode TEXT, created TEXT);
CREATE INDEX IF NOT EXISTS traces_correct ON traces (correct, digits);
CREATE INDEX IF NOT EXISTS traces_probe ON traces (probe_id, training_step);
CREATE INDEX IF NOT EXISTS traces_step ON traces (run, training_step);
"""


class TraceStore:
    """A folder of trace files and an SQLite index of them (``index.sqlite``).

    ``TraceStore(root, create=True)`` makes the folder and index if needed; without ``create``
    a missing or corrupt index is a :class:`TraceError`.
    """

    def __init__(self, root: str | Path, create: bool = False) -> None:
        self.root = Path(root)
        self.index = self.root / INDEX
        if self.root.exists() and not self.root.is_dir():
            raise TraceError(f"{self.root}: is a file, expected a trace store folder")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise TraceError(f"{self.root}: no such trace store")
        elif not self.index.is_file():
            raise TraceError(f"{self.root}: not a trace store (no {INDEX}); "
                             "`llamacpu traces --reindex` rebuilds it from the .pt files")
        try:
            with self._connect() as conn:
                if create:
                    conn.executescript(_CREATE)
                conn.execute("SELECT count(*) FROM traces").fetchone()
        except sqlite3.DatabaseError as err:
            raise TraceError(f"{self.index}: corrupt trace index ({err}); "
                             "`llamacpu traces --reindex` rebuilds it from the .pt files") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed."""
        conn = sqlite3.connect(self.index, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def add(self, trace: dict[str, Any], name: str | None = None) -> Path:
        """Write a trace into the store and index it; returns the payload path."""
        meta = trace["meta"]
        if name is None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            step = meta.get("training_step")
            name = f"{stamp}-{'s%07d-' % step if step is not None else ''}{uuid.uuid4().hex[:10]}.pt"
        path = save_trace(trace, self.root / name)  # the payload is in place before its row exists
        self._insert([(name, meta)])
        return path

    def _insert(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        values = [(
            name, m.get("run"), m.get("stage"), m.get("training_step"), m.get("task"), m.get("prompt"),
            m.get("digits"), m.get("expected"), m.get("produced"), int(bool(m.get("correct"))),
            int(bool(m.get("halted"))), m.get("steps"), m.get("probe_id"), m.get("mode"), m.get("created"),
        ) for name, m in rows]
        with self._connect() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO traces ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)

    def rows(self, failing: bool = False, digits: int | None = None, probe_id: str | None = None,
             run: str | None = None, limit: int | None = None) -> list[TraceRow]:
        """Indexed traces, newest training step first, filtered."""
        where, args = self._where(failing, digits, probe_id, run)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM traces {where} ORDER BY training_step DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        try:
            with self._connect() as conn:
                found = conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise TraceError(f"{self.index}: corrupt trace index ({err})") from None
        return [self._row(r) for r in found]

    def count(self, failing: bool = False, digits: int | None = None, probe_id: str | None = None,
              run: str | None = None) -> int:
        where, args = self._where(failing, digits, probe_id, run)
        try:
            with self._connect() as conn:
                return int(conn.execute(f"SELECT count(*) FROM traces {where}", args).fetchone()[0])
        except sqlite3.DatabaseError as err:
            raise TraceError(f"{self.index}: corrupt trace index ({err})") from None

    @staticmethod
    def _where(failing: bool, digits: int | None, probe_id: str | None, run: str | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if failing:
            clauses.append("correct = 0")
        for column, value in (("digits", digits), ("probe_id", probe_id), ("run", run)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args

    def _row(self, r: tuple[Any, ...]) -> TraceRow:
        d = dict(zip(_COLUMNS, r))
        d["path"] = self.root / d["path"]
        d["correct"], d["halted"] = bool(d["correct"]), bool(d["halted"])
        return TraceRow(**d)

    @classmethod
    def reindex(cls, root: str | Path) -> tuple["TraceStore", list[str]]:
        """Rebuild the index from the payload files; returns the store and the files skipped."""
        root = Path(root)
        if not root.is_dir():
            raise TraceError(f"{root}: no such trace store")
        tmp = root / f".{INDEX}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        rows, skipped = [], []
        for path in sorted(root.glob("*.pt")):
            try:
                rows.append((path.name, load_trace(path)["meta"]))
            except TraceError as err:
                skipped.append(str(err))
        conn = sqlite3.connect(tmp)
        conn.executescript(_CREATE)
        conn.close()
        os.replace(tmp, root / INDEX)
        store = cls(root)
        store._insert(rows)
        return store, skipped


def find_stores(root: str | Path) -> list[TraceStore]:
    """The store at ``root``, or every store directly under it (``traces/`` holds one per run)."""
    root = Path(root)
    if not root.exists():
        raise TraceError(f"{root}: no such trace store")
    if not root.is_dir():
        raise TraceError(f"{root}: is a file, expected a trace store folder")
    if (root / INDEX).exists():
        return [TraceStore(root)]
    return [TraceStore(p) for p in sorted(root.iterdir()) if (p / INDEX).is_file()]
