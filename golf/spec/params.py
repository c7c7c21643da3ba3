"""Evaluation parameters shared by every protocol, validated once at the edge.

Torch-free on purpose: the client CLI builds `golf submit`'s options from these fields
in an install that has no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from golf.spec.errors import parse_document

PlanKind = Literal["canonical", "legacy", "legacy-stride", "full", "full-last", "full-strict"]
Precision = Literal["auto", "fp32", "bf16"]
AttentionKind = Literal["auto", "sdpa", "flash"]
SlotKernel = Literal["auto", "torch", "triton"]
TTTMode = Literal["canonical", "record"]
FreezeScope = Literal["controls", "all"]


class EvalParams(BaseModel):
    """Knobs of an evaluation run; `stride=None` means the protocol's own default.

    User input goes through `parse` (ConfigError, one line); nested in a wire schema it
    validates like any pydantic model. Each field's description is its CLI help.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    seq_len: int = Field(2048, ge=1, le=1 << 16, description="Window length L.")
    stride: int | None = Field(
        None, ge=1, description="Window stride; default: each protocol's own (plain uses L)."
    )
    batch_windows: int = Field(32, ge=1, le=4096, description="Windows per batch B.")
    slot_steps: int = Field(24, ge=0, le=10_000, description="SLOT AdamW steps.")
    slot_lr: float = Field(0.012, gt=0, le=100, description="SLOT peak learning rate.")
    slot_lr_min: float = Field(
        0.001, ge=0, le=100, description="SLOT final learning rate (cosine)."
    )
    batch_invariant: bool = Field(
        False, description="Normalise SLOT's loss per window, not per batch."
    )
    reference: bool = Field(False, description="Run SLOT's literal reference path (slow).")
    plan: PlanKind = Field(
        "canonical",
        description="canonical (each target once), or a record's own sliding plan: legacy "
        "(windows down to 1 token, tail over-counted), legacy-stride (windows shorter than "
        "the stride dropped), full (whole windows only; the first scores all), full-last "
        "(whole windows only, each scores its last stride tokens), full-strict (as full, "
        "without a window that reaches the last target).",
    )
    max_windows: int | None = Field(None, ge=1, description="Score only the first N windows.")
    precision: Precision = Field(
        "auto",
        description="Transformer body precision: fp32 (exact) or bf16 autocast; auto = bf16 "
        "on CUDA, fp32 on CPU. Head, softcap, loss and the SLOT fit are always fp32.",
    )
    attention: AttentionKind = Field(
        "auto",
        description="Attention kernel: auto (FA3 on Hopper, FA2 if installed, else SDPA with "
        "a flash/cuDNN backend forced), sdpa, or flash (requires flash-attn).",
    )
    compile: bool = Field(
        False, description="torch.compile the forward with static (padded) batch shapes."
    )
    slot_kernel: SlotKernel = Field(
        "auto",
        description="SLOT fast-path step: torch, or the fused Triton kernel; auto = triton "
        "on CUDA when importable, else torch.",
    )

    doc_bounded: bool = Field(
        False,
        description="Attention never crosses a document start (BOS, id 1): each window is "
        "masked per document, as the records from 2026-04-10 score.",
    )
    doc_max_len: int = Field(
        0,
        ge=0,
        le=1 << 16,
        description="With doc_bounded, also cut each document every N tokens of a window "
        "(0: never). The records' packed plain eval from 2026-04-10 (rows of "
        "VAL_BATCH_TOKENS/8 tokens, documents split every eval_seq_len) is plain at L = "
        "the row length, doc_bounded, doc_max_len = eval_seq_len.",
    )
    ttt_mode: TTTMode = Field(
        "canonical",
        description="TTT order: canonical (LoRA A seeded per batch, exact phase boundaries, "
        "fixed document order: identical for any worker count) or record (the record's "
        "own order and RNG stream at world size 1).",
    )
    ttt_seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Seed of the TTT LoRA draws (record mode: the "
        "torch seed at the start of the record's TTT eval).",
    )
    ttt_chunk_tokens: int = Field(
        32768, ge=1, description="ttt: tokens per chunk (score the chunk, then train on it)."
    )
    ttt_epochs: int = Field(3, ge=0, le=1000, description="ttt: epochs over each chunk.")
    ttt_lr: float = Field(
        0.002,
        gt=0,
        le=100,
        description="ttt: peak SGD learning rate (cosine over chunks; "
        "0.002 is the sp1024 record's, sp8192 records use 0.005).",
    )
    ttt_momentum: float = Field(0.9, ge=0, lt=1, description="ttt: SGD momentum.")
    ttt_batch_seqs: int = Field(32, ge=1, le=4096, description="ttt: sequences per SGD step.")
    ttt_grad_clip: float = Field(1.0, gt=0, description="ttt: gradient norm clip.")
    ttt_freeze_blocks: int = Field(
        2,
        ge=0,
        le=1000,
        description="ttt: leave the first N blocks out of training "
        "(2 in the sp1024 record, 0 in the sp8192 ones).",
    )
    ttt_freeze_scope: FreezeScope = Field(
        "controls",
        description="ttt: what freezing a block freezes: its control tensors only (the "
        "records keep matrices in banks outside the blocks, so theirs still train) or all.",
    )
    lora_rank: int = Field(96, ge=1, le=4096, description="ttt-lora/phased: LoRA rank.")
    lora_lr: float = Field(1e-4, gt=0, le=100, description="ttt-lora/phased: AdamW lr.")
    lora_chunk: int = Field(
        32,
        ge=1,
        le=1 << 16,
        description="ttt-lora/phased: targets per chunk (score, then one "
        "step); 32 in 2026-04-10, 48 from 2026-04-14.",
    )
    lora_batch_docs: int = Field(
        64, ge=1, le=4096, description="ttt-lora/phased: documents per batch."
    )
    lora_beta1: float = Field(0.0, ge=0, lt=1, description="ttt-lora/phased: AdamW beta1.")
    lora_beta2: float = Field(0.999, ge=0, lt=1, description="ttt-lora/phased: AdamW beta2.")
    lora_eps: float = Field(1e-10, gt=0, le=1, description="ttt-lora/phased: AdamW eps.")
    lora_weight_decay: float = Field(
        0.5, ge=0, le=100, description="ttt-lora/phased: AdamW weight decay."
    )
    lora_alpha: float | None = Field(
        None,
        gt=0,
        description="ttt-lora/phased: scale updates by alpha/rank (144 in later "
        "records); default unscaled, as 2026-04-10 and 2026-04-14.",
    )
    lora_warm_start_a: bool = Field(
        False,
        description="ttt-lora/phased: keep each adapter slot's trained A from batch to batch "
        "(only B is zeroed; A is fresh at the start and after each phase), as "
        "TTT_WARM_START_A=1 in 2026-04-23, 04-27 and 04-29 (PR-1767 lineage); off: a fresh "
        "A per batch, as 2026-04-10 to 04-16. The batches then form one chain (a gang "
        "shares each batch out by adapter slot).",
    )
    lora_sites: str = Field(
        "q,k,v,o,mlp",
        description="ttt-lora/phased: layer sites with a LoRA (the head always "
        "has one), comma-separated from q,k,v,o,mlp.",
    )
    phased_prefix_docs: int = Field(
        2000, ge=0, description="ttt-phased: documents whose scoring is followed by global SGD."
    )
    phased_phases: int = Field(
        3, ge=1, le=1000, description="ttt-phased: global SGD phases over the prefix."
    )
    global_lr: float = Field(0.001, gt=0, le=100, description="ttt-phased: global SGD peak lr.")
    global_momentum: float = Field(0.9, ge=0, lt=1, description="ttt-phased: SGD momentum.")
    global_epochs: int = Field(1, ge=0, le=1000, description="ttt-phased: epochs per phase.")
    global_chunk_tokens: int = Field(
        32768, ge=1, description="ttt-phased: tokens per global SGD chunk."
    )
    global_batch_seqs: int = Field(
        32, ge=1, le=4096, description="ttt-phased: sequences per global SGD step."
    )
    global_grad_clip: float = Field(1.0, gt=0, description="ttt-phased: gradient norm clip.")
    global_doc_bounded: bool = Field(
        True, description="ttt-phased: global SGD attention bounded per document."
    )

    ttt_audit_flips: int = Field(
        2,
        ge=0,
        le=64,
        description="TTT protocols: tokens flipped by the stream causality "
        "audit `golf eval` runs on a prefix (0: no audit); the report carries its verdict.",
    )
    ttt_audit_tokens: int = Field(
        768,
        ge=64,
        le=1 << 16,
        description="TTT protocols: length of the audited prefix "
        "(the chain runs on it at a reduced shape: 4 chunks, windows of ≤ 1/6 of it).",
    )

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> EvalParams:
        """Validate user-supplied parameters strictly (no `true` or `"128"` for an int);
        any problem is a ConfigError with one line."""
        return parse_document(
            cls, doc, "evaluation parameters", "evaluation parameter ", strict=True
        )

    @model_validator(mode="after")
    def _stride_fits(self) -> EvalParams:
        if self.stride is not None and self.stride > self.seq_len:
            raise ValueError(f"stride {self.stride} exceeds seq_len {self.seq_len}")
        if self.doc_max_len and not self.doc_bounded:
            raise ValueError("doc_max_len cuts documents: it needs doc_bounded")
        if self.slot_lr_min > self.slot_lr:
            raise ValueError(f"slot_lr_min {self.slot_lr_min} exceeds slot_lr {self.slot_lr}")
        sites = [s for s in self.lora_sites.split(",") if s]
        unknown = sorted(set(sites) - {"q", "k", "v", "o", "mlp"})
        if unknown or len(set(sites)) != len(sites):
            raise ValueError(f"lora_sites {self.lora_sites!r}: use distinct q,k,v,o,mlp")
        return self
