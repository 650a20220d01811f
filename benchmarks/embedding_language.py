"""The figures and figures-as-numbers of docs/embedding-language.md.

    python benchmarks/embedding_language.py --runs tests/fixtures/tiny-add4 llamacpu/runs/general-cpu \\
        --cross "LABEL=FILE.json" ... [--smollm2] [--out-dir docs] [--results benchmarks/results/embedding_language_cpu.json]

- value arithmetic: for every pair (a, b), is ``e(a) - e(0) + e(b)`` nearest (cosine) to ``e(a + b)``?
  in the ISA's value codes, each run's slot encoder, each run's digit-token embeddings and, with
  ``--smollm2``, SmolLM2's digit tokens; figure ``embedding-sums.png``;
- similarity between the encodings of the values (``embedding-cosines.png``);
- word analogies on SmolLM2's input embeddings (``--smollm2``);
- cross-ISA accuracy from ``llamacpu isa cross --json`` outputs (``cross-isa.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from llamacpu.checkpoint import load_machine
from llamacpu.embed import Term, combine, grid_hits, nearest, sum_grid
from llamacpu.isa import DATA, ISA
from llamacpu.plots_language import cosine_figure, cross_isa_figure, sum_grids_figure

ANALOGIES = ("king - man + woman", "Paris - France + Italy", "Berlin - Germany + Japan", "walking - walk + swim",
             "bigger - big + small", "uncle - man + woman", "3 + 4", "5 - 2", "three + four", "7 - 3")


def codes(isa: ISA) -> torch.Tensor:
    """The ISA's slot vector of DATA v for every value: [C, D]."""
    return torch.stack([isa.encode(DATA, content=v) for v in range(isa.layout.n_values)])


def cosine_stats(t: torch.Tensor) -> dict:
    """Off-diagonal cosine similarity of value encodings [C, d]: its range, and its correlation
    with |a - b| (negative: nearer values are more alike, a number line)."""
    unit = t.float() / t.float().norm(dim=-1, keepdim=True)
    n = t.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    cos = (unit @ unit.T)[off]
    dist = (torch.arange(n).view(-1, 1) - torch.arange(n).view(1, -1)).abs().float()[off]
    corr = float(torch.corrcoef(torch.stack([cos, dist]))[0, 1]) if cos.std() > 1e-9 else None
    return {"min": round(float(cos.min()), 3), "mean": round(float(cos.mean()), 3), "max": round(float(cos.max()), 3),
            "corr_with_distance": None if corr is None else round(corr, 2)}


def machine_tables(run: Path) -> dict[str, torch.Tensor]:
    machine, _, _ = load_machine(run)
    ctrl = machine.controller
    with torch.no_grad():
        slots = ctrl.slot_encoder(codes(machine.isa))
        digit_ids = [ids[0] for ids, _ in (ctrl.tokenizer.pieces(str(d)) for d in range(10))]
        tokens = ctrl.backbone.get_input_embeddings().weight[digit_ids]
    return {f"slot encoder, {run.name}": slots, f"digit tokens, {run.name}": tokens}


def smollm2() -> tuple[torch.Tensor, object]:
    from transformers import AutoTokenizer

    from llamacpu.controller import PromptTokenizer, smollm2_gguf
    from llamacpu.embed import gguf_input_embeddings

    path = smollm2_gguf()
    tok = PromptTokenizer(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))
    return gguf_input_embeddings(path), tok


def analogies(table: torch.Tensor, tok: object) -> list[dict]:
    from llamacpu.embed import parse_expression, term_tokens

    out = []
    for expr in ANALOGIES:
        terms = parse_expression(expr)
        vecs, inputs = [], set()
        for t in terms:
            ids, _ = term_tokens(tok, t.text, space_prefix=True)
            vecs.append(table[ids].mean(0))
            inputs.update(ids)
        found = nearest(combine(terms, vecs), table, lambda i: tok.hf.decode([i]), 3, inputs)
        out.append({"expression": expr, "nearest": [[n.label, round(n.cosine, 3)] for n in found]})
    return out


def plan_sources(run: Path, digits: int, trials: int) -> dict:
    """How often an operand digit's slot (role a[i] or b[i]) attends most to that digit's token in
    the prompt (plan.prompt_attn, the last layer's heads averaged), over held-out problems."""
    import re

    from llamacpu.evaluate import draw_held_out, free_run
    from llamacpu.tasks import AdditionTask

    machine, _, _ = load_machine(run)
    task = AdditionTask()
    problems = draw_held_out(task, digits, trials, seed=f"sources-{digits}")
    programs = [task.build(p, machine.isa) for p in problems]
    fr = free_run(machine, programs, record=True)
    hits = slots = 0
    weight_right, width = 0.0, 0
    for i, prog in enumerate(programs):
        _, places, numbers = machine.controller.tokenizer.encode(prog.prompt)
        attn = fr.plan.prompt_attn[i].float()  # (W, L), left-padded to the batch's longest prompt
        pad = attn.shape[1] - len(places)
        for addr, role in prog.roles.items():
            m = re.fullmatch(r"([ab])\[(\d+)\]", role)
            if not m:
                continue
            want = (1 if m.group(1) == "a" else 2, int(m.group(2)) + 1)  # (number, place)
            row = attn[addr, pad:]
            right = [k for k in range(len(places)) if (numbers[k], places[k]) == want]
            slots += 1
            hits += int(int(row.argmax()) in right)
            weight_right += float(row[right].sum())
            width += len(places)
    return {"run": run.name, "digits": digits, "problems": len(programs), "operand_slots": slots,
            "top_source_is_the_digit": hits, "mean_weight_on_the_digit": round(weight_right / max(slots, 1), 4),
            "uniform_weight": round(slots / max(width, 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="*", default=[])
    ap.add_argument("--cross", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--smollm2", action="store_true")
    ap.add_argument("--sources", type=Path, nargs="*", default=[], help="runs whose plan attention to measure")
    ap.add_argument("--out-dir", type=Path, default=Path("docs"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/embedding_language_cpu.json"))
    args = ap.parse_args()
    results: dict = {"sums": {}, "analogies": None, "cross": [], "plan_sources": []}
    for run in args.sources:
        results["plan_sources"] += [plan_sources(run, d, 100) for d in (1, 2)]

    tables: dict[str, torch.Tensor] = {}
    if args.runs:
        machine, _, _ = load_machine(args.runs[0])
        tables["ISA value codes (DATA v)"] = codes(machine.isa)
    for run in args.runs:
        tables.update(machine_tables(run))
    if args.smollm2:
        table, tok = smollm2()
        ids = [tok.pieces(str(d))[0][0] for d in range(10)]
        tables["digit tokens, SmolLM2"] = table[ids]
        results["analogies"] = analogies(table, tok)
    grids = []
    for name, t in tables.items():
        pred = sum_grid(t, offset=0)
        hits, pairs = grid_hits(pred)
        plain_hits, _ = grid_hits(sum_grid(t))  # e(a) + e(b) alone, no e(0) taken off
        results["sums"][name] = {"values": t.shape[0], "pairs": pairs, "hits_analogy": hits, "hits_plain_sum": plain_hits,
                                 "cosine": cosine_stats(t)}
        grids.append((name, pred, hits, pairs))
    if grids:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        sum_grids_figure(grids).savefig(args.out_dir / "embedding-sums.png", dpi=90)
        cosine_figure(list(tables.items())).savefig(args.out_dir / "embedding-cosines.png", dpi=90)
    rows = []
    for item in args.cross:
        label, _, path = item.partition("=")
        label = label.replace("\\n", "\n")  # a line break typed as \n on the command line
        data = json.loads(Path(path).read_text())
        for r in data["results"]:
            row = {"label": f"{label}\n{r['digits']} digit{'s' if r['digits'] > 1 else ''}\n({r['trials']})"}
            for k in ("a_on_a", "a_on_b", "translated", "b_on_b"):
                row[k] = None if r[k] is None else r[k]["accuracy"]
            rows.append(row)
            results["cross"].append({"label": label, "from": data["from"], "to": data["to"], **r})
    if rows:
        cross_isa_figure(rows).savefig(args.out_dir / "cross-isa.png", dpi=90)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
