"""The BOS token that starts a pretrained controller's prompts (the attention sink it was
pretrained with), its ablation flag, and runs saved before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamacpu import cli
from llamacpu.controller import ControllerConfig, PromptTokenizer, char_tokenizer


def bos_tokenizer():
    """The character vocabulary as an HF fast tokenizer with a BOS token ``<s>``."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=char_tokenizer(), pad_token="<pad>", unk_token="<unk>")
    tok.add_special_tokens({"bos_token": "<s>"})
    return tok


def save_bos_llama(path: Path) -> None:
    """A 1-layer, width-32 Llama whose tokenizer has a BOS token."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bos_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)


def test_a_prompt_starts_with_bos_which_carries_no_place() -> None:
    hf = bos_tokenizer()
    with_bos, without = PromptTokenizer(hf, bos=True), PromptTokenizer(hf, bos=False)
    ids, places, numbers = with_bos.encode("12 + 34")
    plain_ids, plain_places, plain_numbers = without.encode("12 + 34")
    assert ids == [hf.bos_token_id, *plain_ids]
    assert places == [0, *plain_places] == [0, 2, 1, 0, 0, 0, 2, 1]
    assert numbers == [0, *plain_numbers] == [0, 1, 1, 0, 0, 0, 2, 2]
    assert with_bos.pieces("12 + 34")[1][0] == "<s>"
    batch = with_bos.batch(["12 + 34", "5 + 6"])  # left-padded: BOS is each prompt's first real token
    short = len(with_bos.encode("5 + 6")[0])
    assert batch.ids[1, -short] == hf.bos_token_id and batch.mask[1, :-short].sum() == 0


def test_no_bos_where_the_tokenizer_has_none_or_the_run_predates_it() -> None:
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_object=char_tokenizer(), pad_token="<pad>", unk_token="<unk>")
    assert PromptTokenizer(plain, bos=True).encode("1 + 2") == PromptTokenizer(plain).encode("1 + 2")
    assert PromptTokenizer(bos=True).bos_id is None  # the tiny preset's own vocabulary
    assert ControllerConfig().bos
    assert not ControllerConfig.from_dict({"preset": "smollm2"}).bos  # a config.json from before
    assert ControllerConfig.from_dict({"preset": "smollm2", "bos": True}).bos


@pytest.mark.parametrize("flag", [[], ["--no-bos"]])
def test_train_writes_the_bos_choice_and_the_controller_uses_it(tmp_path: Path, flag: list[str]) -> None:
    from llamacpu import checkpoint as ckpt

    save_bos_llama(tmp_path / "llama")
    run = tmp_path / "run"
    code = cli.main(["train", "--run", str(run), "--cpu", str(tmp_path / "llama"), "--slots", "40", "--max-digits", "1",
                     "--no-traces", "--quiet", "--max-steps", "1", "--batch-size", "2", *flag])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["controller"]["bos"] is (not flag)
    machine = ckpt.build_machine(ckpt.read_config(run), "cpu")
    first = machine.controller.tokenizer.encode("3 + 4")[0][0]
    assert (first == bos_tokenizer().bos_token_id) is (not flag)


def test_no_bos_is_refused_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_bos_llama(tmp_path / "llama")
    args = ["train", "--run", str(tmp_path / "run"), "--cpu", str(tmp_path / "llama"), "--slots", "40",
            "--max-digits", "1", "--no-traces", "--quiet", "--max-steps", "1", "--batch-size", "2"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main([*args, "--no-bos"]) != 0
    assert "--no-bos shapes a new run" in capsys.readouterr().err
