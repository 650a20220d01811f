"""Embedding arithmetic: the expression reader, nearest neighbours, the sum grid, `llamacpu embed`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llamacpu import cli
from llamacpu.cli_embed import SPACE_NAMES
from llamacpu.embed import SPACES, EmbedError, Term, grid_hits, nearest, parse_expression, sum_grid, term_tokens

from machine_fixtures import FIXTURE_RUN, one_error_line
from test_presets import save_tiny_llama


def test_expressions() -> None:
    assert parse_expression("king - man + woman") == [Term(1, "king"), Term(-1, "man"), Term(1, "woman")]
    assert parse_expression("- 3 + 4") == [Term(-1, "3"), Term(1, "4")]
    assert parse_expression("x-ray") == [Term(1, "x-ray")]  # no spaces round the '-': one word
    with pytest.raises(EmbedError, match="empty term"):
        parse_expression("king - ")
    assert SPACE_NAMES == SPACES  # the CLI's copy, kept without importing torch


class _Vocab:
    """' king' is one token, ' 3' is a space and a digit (as in SmolLM2)."""

    table = {" king": [7], "king": [5], " 3": [1, 3], "3": [3]}

    def pieces(self, text: str) -> tuple[list[int], list[str]]:
        ids = self.table[text]
        return ids, [str(i) for i in ids]


def test_a_term_is_the_word_in_a_sentence_where_that_is_one_token() -> None:
    assert term_tokens(_Vocab(), "king", space_prefix=True)[0] == [7]
    assert term_tokens(_Vocab(), "3", space_prefix=True)[0] == [3]  # not diluted by the space token
    assert term_tokens(_Vocab(), "king", space_prefix=False)[0] == [5]


def test_nearest_leaves_the_inputs_out() -> None:
    table = torch.eye(3)
    found = nearest(torch.tensor([1.0, 0.9, 0.0]), table, str, k=2)
    assert [n.index for n in found] == [0, 1]
    assert [n.index for n in nearest(torch.tensor([1.0, 0.9, 0.0]), table, str, k=5, exclude={0})] == [1, 2]


def test_sum_grid_on_a_table_that_is_linear_in_the_value() -> None:
    values = torch.arange(10.0)
    table = torch.stack([values, torch.ones(10)], dim=1)  # row v = (v, 1): v(a) - v(0) + v(b) = v(a + b)
    hits, pairs = grid_hits(sum_grid(table, offset=0))
    assert pairs == 32 and hits == 32  # ordered pairs a != b, both nonzero, sum below 10
    one_hot = sum_grid(torch.eye(10), offset=0)
    assert (one_hot == -1).all()  # one-hot codes carry no arithmetic: every other row is equally near


@pytest.fixture(scope="module")
def analogy_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Llama whose embeddings make 'k - m + w' exactly 'q' (character tokens)."""
    from transformers import LlamaForCausalLM

    path = tmp_path_factory.mktemp("embed") / "llama"
    save_tiny_llama(path)
    model = LlamaForCausalLM.from_pretrained(path)
    emb = model.get_input_embeddings().weight
    ids = {c: 2 + " 0123456789+-*/=?.,abcdefghijklmnopqrstuvwxyz".index(c) for c in "kmwq"}
    with torch.no_grad():
        emb[ids["q"]] = emb[ids["k"]] - emb[ids["m"]] + emb[ids["w"]]
    model.save_pretrained(path)
    return path


def test_embed_a_saved_llama_finds_the_analogy(analogy_llama: Path, capsys) -> None:
    code = cli.main(["embed", "k - m + w", "--cpu", str(analogy_llama), "--no-space-prefix", "--json", "-k", "3"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["pieces"] for t in out["terms"]] == [["k"], ["m"], ["w"]]
    assert out["nearest"][0]["label"] == "q" and out["nearest"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert len(out["nearest"]) == 3


def test_embed_keep_inputs_and_the_space_prefix(analogy_llama: Path, capsys) -> None:
    assert cli.main(["embed", "k", "--cpu", str(analogy_llama), "--no-space-prefix", "--keep-inputs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nearest"][0]["label"] == "k"  # a term is nearest itself
    assert cli.main(["embed", "k", "--cpu", str(analogy_llama), "--json"]) == 0
    # A character vocabulary has no one-token " k": the term is embedded as typed, not diluted by a space.
    assert json.loads(capsys.readouterr().out)["terms"][0]["pieces"] == ["k"]


def test_embed_a_runs_value_codes_and_slot_encoder(capsys) -> None:
    assert cli.main(["embed", "3 + 4", "--run", str(FIXTURE_RUN), "--space", "codes", "--json"]) == 0
    codes = json.loads(capsys.readouterr().out)
    # DATA 3 + DATA 4 = (2 x type DATA, 1 at 3, 1 at 4) shares only the type with any DATA v: cosine 2 / sqrt(12)
    assert codes["nearest"][0]["cosine"] == pytest.approx(3 ** -0.5, abs=1e-6)
    assert cli.main(["embed", "3 + 4", "--run", str(FIXTURE_RUN), "--space", "slots", "--json", "-k", "20"]) == 0
    slots = json.loads(capsys.readouterr().out)
    assert sorted(n["index"] for n in slots["nearest"]) == [v for v in range(20) if v not in (3, 4)]


def test_embed_bad_input_is_one_line(capsys, tmp_path: Path) -> None:
    assert "empty term" in one_error_line(capsys, ["embed", "king -  ", "--cpu", "smollm2"])
    assert "is not a value (0..19)" in one_error_line(capsys, ["embed", "3 + 40", "--run", str(FIXTURE_RUN),
                                                           "--space", "slots"])
    assert "use --run DIR" in one_error_line(capsys, ["embed", "3 + 4", "--cpu", "smollm2", "--space", "slots"])
    assert "tiny preset" in one_error_line(capsys, ["embed", "a", "--cpu", "tiny"])
    assert "unknown controller" in one_error_line(capsys, ["embed", "a", "--cpu", str(tmp_path / "none")])


@pytest.mark.slow
def test_smollm2_king_minus_man_plus_woman_is_queen(capsys) -> None:
    assert cli.main(["embed", "king - man + woman", "--cpu", "smollm2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nearest"][0]["label"] == " queen"
