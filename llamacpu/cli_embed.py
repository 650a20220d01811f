"""``llamacpu embed``: arithmetic on embeddings, nearest neighbours by cosine (:mod:`llamacpu.embed`).

``--cpu smollm2`` (or a Llama folder) embeds tokens with a pretrained model's input embeddings;
``--run DIR`` uses a run's machine: its controller's token embeddings, or with ``--space`` the
ISA's value codes, the slot encoder's reading of ``DATA v``, or the address embedding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SPACE_NAMES = ("tokens", "codes", "slots", "addresses")  # embed.SPACES, without importing torch for --help
SPACE_HELP = ("tokens: the controller's input embeddings (default); codes: the ISA's slot vector of DATA v; "
              "slots: slot_encoder(DATA v), what the execute phase reads; addresses: the address embedding of slot a")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "embed", help="arithmetic on embeddings: nearest tokens (or values) by cosine similarity",
        description="Add and subtract embeddings and print the nearest candidates by cosine similarity, "
        "word2vec-style: llamacpu embed \"king - man + woman\" --cpu smollm2; "
        "llamacpu embed \"3 + 4\" --run DIR --space slots. Terms are joined by ' + ' and ' - '.")
    p.add_argument("expression", help="terms joined by ' + ' and ' - ', e.g. \"king - man + woman\"")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cpu", metavar="PRESET", help="a pretrained controller: smollm2, or a Llama-family model folder")
    src.add_argument("--run", type=Path, metavar="DIR", help="a run folder: its machine's embeddings")
    p.add_argument("--space", choices=SPACE_NAMES, default="tokens", help=SPACE_HELP)
    p.add_argument("-k", "--top", type=int, default=5, help="how many neighbours (default 5)")
    p.add_argument("--keep-inputs", action="store_true",
                   help="rank the terms themselves too (word2vec leaves them out)")
    p.add_argument("--no-space-prefix", action="store_true",
                   help="tokens of a subword vocabulary: embed the term as typed, not as the word inside a sentence "
                   "(' king', the default where that is one token)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_embed)


def cmd_embed(args: argparse.Namespace) -> int:
    from llamacpu.embed import EmbedError, parse_expression

    terms = parse_expression(args.expression)  # before any model loads: a typo is answered at once
    if args.top < 1:
        raise EmbedError("--top must be at least 1")
    if args.cpu is not None and args.space != "tokens":
        raise EmbedError(f"--space {args.space} is a machine's: use --run DIR (--cpu has token embeddings only)")
    if args.cpu is not None:
        table, tok = _pretrained_tokens(args.cpu)
        out = _tokens(terms, table, tok, args)
    else:
        from llamacpu.checkpoint import load_machine
        from llamacpu.run_folder import check_run

        check_run(args.run)
        machine, _, _ = load_machine(args.run)
        if args.space == "tokens":
            table = machine.controller.backbone.get_input_embeddings().weight.detach()
            out = _tokens(terms, table, machine.controller.tokenizer, args)
        else:
            out = _machine_space(terms, machine, args)
    out = {"expression": args.expression, "space": args.space,
           "source": args.cpu if args.cpu is not None else str(args.run), **out}
    if args.json:
        print(json.dumps(out))
        return 0
    _print(out)
    return 0


def _pretrained_tokens(name: str) -> tuple[Any, Any]:
    """The input embedding table [V, d] and the tokenizer of a pretrained controller."""
    from llamacpu.cli_train import check_controller_name
    from llamacpu.controller import ControllerConfig, PromptTokenizer, load_pretrained

    from llamacpu.embed import EmbedError

    if name == "tiny":
        raise EmbedError("the tiny preset has no weights outside a run: use --run DIR, or --cpu smollm2")
    check_controller_name(name, hub=False)
    if name == "smollm2":  # the embedding table alone: a third of the time of loading all 30 layers
        from transformers import AutoTokenizer

        from llamacpu.controller import smollm2_gguf
        from llamacpu.embed import gguf_input_embeddings

        path = smollm2_gguf()
        return gguf_input_embeddings(path), PromptTokenizer(AutoTokenizer.from_pretrained(str(path.parent),
                                                                                          gguf_file=path.name))
    model, hf_tok = load_pretrained(ControllerConfig(preset=name))
    return model.get_input_embeddings().weight.detach(), PromptTokenizer(hf_tok)


def _token_label(tok: Any, i: int) -> str:
    if tok.hf is not None:
        return tok.hf.decode([i])
    return tok.tok.id_to_token(i) or f"<{i}>"


def _tokens(terms: list[Any], table: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Each term's tokens, their signed sum, and the nearest vocabulary rows."""
    from llamacpu.embed import EmbedError, combine, nearest, term_tokens

    prefix = tok.hf is not None and not args.no_space_prefix
    vectors, rows, inputs = [], [], set()
    for t in terms:
        ids, pieces = term_tokens(tok, t.text, prefix)
        if not ids or any(i >= table.shape[0] for i in ids):
            raise EmbedError(f"{t.text!r} has no tokens in this vocabulary")
        vectors.append(table[ids].float().mean(0))
        inputs.update(ids)
        rows.append({"sign": t.sign, "text": t.text, "ids": ids, "pieces": pieces})
    query = combine(terms, vectors)
    found = nearest(query, table, lambda i: _token_label(tok, i), args.top, None if args.keep_inputs else inputs)
    return {"terms": rows, "nearest": [n.__dict__ for n in found]}


def _machine_space(terms: list[Any], machine: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Terms are values (codes, slots) or addresses; candidates are every value or address."""
    import torch

    from llamacpu.embed import combine, integer_term, nearest
    from llamacpu.isa import DATA

    isa, ctrl = machine.isa, machine.controller
    with torch.no_grad():
        if args.space == "addresses":
            n = isa.layout.n_slots
            table = ctrl.address_embedding(n, machine.keys.device).reshape(n, -1)
            what, name = "address", lambda i: f"{i:04d}"
        else:
            n = isa.layout.n_values
            table = torch.stack([isa.encode(DATA, content=v) for v in range(n)])  # (C, D)
            if args.space == "slots":
                table = ctrl.slot_encoder(table.to(machine.keys.device))  # (C, d)
            what, name = "value", str
    indices = [integer_term(t, n, what) for t in terms]
    query = combine(terms, [table[i] for i in indices])
    found = nearest(query, table, name, args.top, None if args.keep_inputs else set(indices))
    rows = [{"sign": t.sign, "text": t.text, "index": i} for t, i in zip(terms, indices)]
    return {"terms": rows, "nearest": [n.__dict__ for n in found]}


def _print(out: dict[str, Any]) -> None:
    from rich.table import Table

    from llamacpu.cli_trace import _console

    con = _console()
    parts = []
    for t in out["terms"]:
        sign = "+" if t["sign"] > 0 else "-"
        where = f" {t['pieces']!r}" if len(t.get("pieces", [])) > 1 else ""
        parts.append(f"{sign} {t['text']}{where}")
    expr = " ".join(parts).removeprefix("+ ")
    con.print(f"{out['space']} of {out['source']}: {expr}")
    table = Table("rank", "nearest", "cosine")
    for rank, n in enumerate(out["nearest"], start=1):
        table.add_row(str(rank), repr(n["label"]) if out["space"] == "tokens" else n["label"], f"{n['cosine']:.3f}")
    con.print(table)
    cosines = [n["cosine"] for n in out["nearest"]]
    if len(cosines) > 1 and max(cosines) - min(cosines) < 1e-6:
        con.print("[yellow]a tie: these are equally near, so the sum names none of them[/]")
