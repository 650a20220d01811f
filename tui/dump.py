"""The debugger's headless twin: what the panes show at one position, as text or JSON.

``llamacpu debug TRACE --dump STEP [--json]``, for scripts, CI and screen readers. Needs no
terminal and does not import Textual.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tui.model import DISTRIBUTIONS, TraceView

TOP = 3  # addresses listed per attention distribution


def snapshot(view: TraceView, pos: int) -> dict[str, Any]:
    """Plain data of every pane at this position."""
    marks = view.marks(pos)
    unlike = view.unlike_at(pos)
    phase, i = view.phase(pos)
    rows = []
    for addr in range(view.window):
        r = view.row(pos, addr)
        rows.append({"addr": addr, "type": r.type, "text": r.body, "confidence": round(r.confidence, 4),
                     "role": r.role, "pc": addr == marks.pc, "read": addr in marks.reads,
                     "written": addr == marks.written, "changed": addr in marks.changed,
                     "unlike_target": addr in unlike})
    out: dict[str, Any] = {
        "trace": str(view.path) if view.path else None, "title": view.title, "position": pos,
        "phase": phase, "step": view.step_number(pos), "label": view.label(pos), "meta": _plain(view.meta), "memory": rows,
    }
    dists = view.distributions(pos)
    if dists is not None:
        entropy = view.step_entropy(pos)
        out["attention"] = {
            name: {"top": [[int(a), round(float(dists[k, a]), 4)] for a in np.argsort(-dists[k])[:TOP]],
                   "entropy_bits": round(float(entropy[k]), 4)}
            for k, name in enumerate(DISTRIBUTIONS)
        }
        oeu = view.oeu(pos)
        out["oeu"] = {**oeu.__dict__, "right": oeu.right}
        out["pc_target"] = view.pc_target(pos)
        out["control"] = dict(view.control(pos).__dict__)
    else:
        attn = view.prompt_attention(i)
        pieces = view.prompt_pieces
        if attn is not None:
            out["prompt_attention"] = [[pieces[j] if j < len(pieces) else str(j), round(float(attn[j]), 4)]
                                       for j in np.argsort(-attn)[:TOP]]
    return out


def render_text(data: dict[str, Any]) -> str:
    lines = [data["title"], f"position {data['position']}: {data['label']}", ""]
    if "oeu" in data:
        o = data["oeu"]
        verdict = {True: "right", False: "WRONG", None: "unknown"}[o["right"]]
        expected = "?" if o["expected"] is None else o["expected"]
        lines.append(f"OEU  {o['op']}({o['a']}, {o['b']}) = {o['out']} p={o['out_prob']:.2f}  "
                     f"expected {expected}  {verdict}  gate {o['gate']:.2f}  halt {o['halt']:.2f}")
        c = data["control"]
        if c["jump"] is not None:
            cond = "" if c["condition"] is None else f" on {c['condition']}"
            lines.append(f"jump {c['jump']}{cond}: {'taken' if c['taken'] else 'not taken'} (to {c['target']:04d})")
        if c["departed"] is not None:
            lines.append(f"off the reference path since step {c['departed']}")
        elif c["ref_pc"] is not None:
            lines.append(f"reference PC {c['ref_pc']:04d}" + ("" if c["ref_taken"] is None else
                                                              (", taken" if c["ref_taken"] else ", not taken")))
        lines.append("attention (top addresses, entropy):")
        for name, a in data["attention"].items():
            tops = "  ".join(f"{addr:04d}:{p:.2f}" for addr, p in a["top"])
            lines.append(f"  {name:<5} {tops}   H={a['entropy_bits']:.2f} bits")
    elif "prompt_attention" in data:
        tops = "  ".join(f"{piece!r}:{p:.2f}" for piece, p in data["prompt_attention"])
        lines.append(f"plan: slot compiled from prompt tokens {tops}")
    lines += ["", "memory (> pc, r read, w written, * changed, ! unlike the compiler's image):"]
    for r in data["memory"]:
        if r["type"] == "EMPTY" and not r["role"] and not (r["written"] or r["changed"] or r["unlike_target"]):
            continue
        mark = (">" if r["pc"] else " ") + ("r" if r["read"] else " ") + ("w" if r["written"] else " ") + \
               ("*" if r["changed"] else " ") + ("!" if r["unlike_target"] else " ")
        role = f"  ; {r['role']}" if r["role"] else ""
        lines.append(f"{mark} {r['addr']:04d}  {r['type']:<6} {r['text']:<32} {r['confidence']:.2f}{role}")
    return "\n".join(lines)


def dump(view: TraceView, pos: int, as_json: bool = False) -> str:
    data = snapshot(view, pos)
    return json.dumps(data, indent=1) if as_json else render_text(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
