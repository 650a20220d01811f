"""Embedding arithmetic: word2vec-style analogies on a controller's embeddings and the machine's codes.

An expression is terms joined by `` + `` and `` - `` (spaces around the operator, so ``-`` inside a
word stays): ``king - man + woman``, ``3 + 4``. Each term is a vector of one *space*:

- ``tokens``: the controller's input embedding of the term's tokens (their mean when the term is
  several tokens), over the whole vocabulary;
- ``codes``: the ISA's own encoding of ``DATA v``, a slot vector ``[D]`` (:meth:`ISA.encode`);
- ``slots``: that slot as the controller reads it in the execute phase, ``slot_encoder(DATA v)``;
- ``addresses``: the learned address embedding of slot ``a`` (page plus offset).

The sum is compared by cosine similarity with every candidate of its space (every token, every
value ``0..C-1``, every address); as word2vec's analogy test does, the terms themselves are left
out of the ranking unless asked (``keep_inputs``), or ``king - man + woman`` would answer ``king``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from llamacpu.errors import LlamaCPUError

SPACES = ("tokens", "codes", "slots", "addresses")
TIE = 1e-6  # cosines closer than this are equal
_OPERATOR = re.compile(r"\s+([+-])(?:\s+|$)")  # an operator at the end leaves an empty term


class EmbedError(LlamaCPUError):
    """An expression that cannot be read or embedded."""


@dataclass(frozen=True)
class Term:
    sign: int  # +1 or -1
    text: str


@dataclass(frozen=True)
class Neighbour:
    index: int  # token id, value or address
    label: str
    cosine: float


def parse_expression(text: str) -> list[Term]:
    """``"king - man + woman"`` -> [+king, -man, +woman]; a leading ``-`` negates the first term."""
    body = text.strip()
    sign = 1
    if body.startswith("- ") or body.startswith("+ "):
        sign, body = (-1 if body[0] == "-" else 1), body[2:].strip()
    parts = _OPERATOR.split(body)
    terms = [Term(sign, parts[0].strip())]
    for op, word in zip(parts[1::2], parts[2::2]):
        terms.append(Term(1 if op == "+" else -1, word.strip()))
    if any(not t.text for t in terms):
        raise EmbedError(f"{text!r}: an empty term (write terms joined by ' + ' and ' - ', e.g. 'king - man + woman')")
    return terms


def combine(terms: list[Term], vectors: list[torch.Tensor]) -> torch.Tensor:
    """The signed sum of the terms' vectors, each [d] -> [d]."""
    return torch.stack([t.sign * v.float() for t, v in zip(terms, vectors)]).sum(0)


def nearest(query: torch.Tensor, table: torch.Tensor, label: Callable[[int], str], k: int = 5,
            exclude: set[int] | None = None) -> list[Neighbour]:
    """The k rows of ``table`` [V, d] most cosine-similar to ``query`` [d], skipping ``exclude``;
    ``label`` names a row (called for the k found only: a vocabulary has 50,000 rows)."""
    cos = F.cosine_similarity(table.float(), query.float().unsqueeze(0), dim=-1)  # (V,)
    if exclude:
        cos[list(exclude)] = -float("inf")
    top = torch.topk(cos, min(k, int(torch.isfinite(cos).sum())))
    return [Neighbour(int(i), label(int(i)), float(c)) for c, i in zip(top.values, top.indices)]


def gguf_input_embeddings(path: Path) -> torch.Tensor:
    """The token embedding table [V, d] of a Llama GGUF file, dequantized as transformers does
    (through ``gguf``), without building the model."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    for t in reader.tensors:
        if t.name == "token_embd.weight":
            return torch.from_numpy(dequantize(t.data, t.tensor_type).copy()).float()
    raise EmbedError(f"{path}: no token_embd.weight tensor")


def term_tokens(tokenizer: Any, text: str, space_prefix: bool) -> tuple[list[int], list[str]]:
    """A term's token ids and pieces. With ``space_prefix`` (a subword vocabulary), the word as it
    stands inside a sentence (``' king'``) when that is one token; otherwise the term as typed (in
    SmolLM2 ``' 3'`` is ``' '`` then ``'3'``, and the space would dilute the digit)."""
    if space_prefix:
        ids, pieces = tokenizer.pieces(" " + text)
        if len(ids) == 1:
            return ids, pieces
    return tokenizer.pieces(text)


def integer_term(term: Term, count: int, what: str) -> int:
    """A term naming a value or an address: an integer in 0..count-1."""
    if not re.fullmatch(r"\d+", term.text) or int(term.text) >= count:
        raise EmbedError(f"{term.text!r} is not a {what} (0..{count - 1})")
    return int(term.text)


def sum_grid(table: torch.Tensor, offset: int | None = None) -> torch.Tensor:
    """For every pair (a, b) of rows of ``table`` [C, d]: the row nearest (cosine) to
    ``table[a] + table[b]`` (minus ``table[offset]`` when given, the analogy form
    ``a - 0 + b``), the inputs (a, b and the offset) left out -> [C, C] long (the nearest row;
    -1 where two rows are equally near: one-hot codes tie everywhere, and a tie is no answer)."""
    c = table.shape[0]
    t = table.float()
    sums = t.unsqueeze(1) + t.unsqueeze(0)  # (C, C, d)
    if offset is not None:
        sums = sums - t[offset]
    cos = F.cosine_similarity(sums.unsqueeze(2), t.view(1, 1, c, -1), dim=-1)  # (C, C, C)
    idx = torch.arange(c)
    cos[idx.view(-1, 1), idx.view(1, -1), idx.view(-1, 1).expand(c, c)] = -float("inf")  # leave a out
    cos[idx.view(-1, 1), idx.view(1, -1), idx.view(1, -1).expand(c, c)] = -float("inf")  # leave b out
    if offset is not None:
        cos[..., offset] = -float("inf")  # the subtracted row is an input too
    top = torch.topk(cos, 2, dim=-1)
    tied = (top.values[..., 0] - top.values[..., 1]) < TIE
    return torch.where(tied, torch.full_like(top.indices[..., 0], -1), top.indices[..., 0])


def grid_hits(predicted: torch.Tensor, modulo: int | None = None) -> tuple[int, int]:
    """How many pairs (a, b) of a :func:`sum_grid` land on a + b: (hits, pairs). Pairs whose sum
    is past the table are not counted unless ``modulo`` wraps them (the ISA's arithmetic does)."""
    c = predicted.shape[0]
    a, b = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
    target = a + b
    if modulo is not None:
        target = target % modulo
    # A pair whose sum is one of its inputs (b = 0), or with a = b, cannot be answered: inputs are
    # left out of the ranking.
    valid = (target < c) & (a != b) & (a != target) & (b != target)
    return int((predicted[valid] == target[valid]).sum()), int(valid.sum())
