"""The document-bounded SP8192 GPT of the Parameter Golf records 2026-04-10 … 2026-04-29.

The 04-10 VarLenAttn stack and its descendants (phased TTT, SmearGate, gated attention,
CaseOps, LQER), one file. Eleven physical blocks, MLP ×4 with LeakyReLU(0.5)², partial
RoPE without NTK scaling, per-head q gain, XSA, gated U-Net skips over *looped* virtual
layers (`loop_start..loop_end` run `num_loops + 1` times), tied softcapped head, and:

* two residual lanes from the first decoder layer at or past `parallel_start`: each
  parallel block reads lane 0 (with the x0 mix) for attention and lane 1 for the MLP, and
  feeds both outputs back into both lanes through learned per-layer lambdas
  (`parallel_resid_lambdas` [L, 2], `parallel_post_lambdas` [L, 2, 2]); the head reads
  the mean of the lanes (or one lane, `final_lane`);
* attention that never crosses a document: the model takes the document segments from
  its `AttentionContext`, as the records pass `cu_seqlens` to flash-attn varlen;
* optional gates on the attention output, one per family member:
  `attn_out` (04-16: `y *= 2σ(W x[:, :w])`, W = `attn.attn_gate_proj` [H, w]),
  `dense` (04-19/22: `y *= σ(x Wᵀ)`, W = `attn.attn_gate_w` [H, d]),
  `sparse` (04-23 on: `y *= σ(s · x[:, :w] Wᵀ)`, W = `attn.attn_gate_w` [H, w]);
* optional SmearGate on the raw token embedding (04-16 on): `x_t += λ σ(W x_t[:w]) x_{t−1}`,
  with the BOS fix of 04-27/04-29 (no smear into a token that is BOS).

The records keep block matrices in banks while training and unbank them before
quantizing, so their artifacts (and this model) use per-block names
(`blocks.{i}.attn.c_q.weight`, …). LQER correction factors and int8 gate rows are storage
(golf/formats); this model sees dense weights.
"""

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from golf.models.attention import (
    Adapter,
    AttentionContext,
    adapter_delta,
    plus_delta,
)
from golf.models.gpt import (
    CastedLinear,
    qk_attention,
    rms_norm,
    rotary,
    take_rows,
)
from golf.models.roles import Role, role, roles_of
from golf.spec.errors import ConfigError, parse_document

MATRIX, EMBEDDING, CONTROL = Role.MATRIX, Role.EMBEDDING, Role.CONTROL

ARCH = "varlen-sp8192"
BOS_ID = 1

Gate = Literal["none", "attn_out", "dense", "sparse"]
Smear = Literal["none", "smear", "smear_bos"]
Rope = tuple[Tensor, Tensor]


class VarlenConfig(BaseModel):
    """Every knob that fixes the model's tensors and forward math, bounded because it
    arrives in untrusted artifact metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(8192, ge=2, le=1 << 18)
    num_layers: int = Field(11, ge=1, le=256)
    model_dim: int = Field(512, ge=2, le=16384)
    embedding_dim: int = Field(0, ge=0, le=16384)  # 0: model_dim, no projections
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_mult: float = Field(4.0, gt=0, le=64)
    tie_embeddings: bool = True
    tied_embed_init_std: float = Field(0.005, ge=0, le=1)
    logit_softcap: float = Field(30.0, gt=0, le=1e4)
    rope_base: float = Field(10000.0, gt=0, le=1e9)
    rope_dims: int = Field(16, ge=0, le=16384)
    # rope_yarn: NTK-scale the base past rope_train_seq_len (off in every record).
    rope_yarn: bool = False
    rope_train_seq_len: int = Field(2048, ge=1, le=1 << 20)
    qk_gain_init: float = Field(5.0, ge=-1e3, le=1e3)
    ln_scale: bool = True
    xsa_last_n: int = Field(11, ge=0, le=1024)
    skip_gates: bool = True
    num_loops: int = Field(2, ge=0, le=64)
    loop_start: int = Field(3, ge=0, le=255)
    loop_end: int = Field(5, ge=0, le=255)
    parallel_start: int = Field(8, ge=0, le=256)  # 0: no lanes
    final_lane: Literal["mean", "attn", "mlp"] = "mean"
    gate: Gate = "none"
    gate_window: int = Field(12, ge=1, le=16384)
    attn_out_gate_src: Literal["proj", "q"] = "proj"
    sparse_gate_scale: float = Field(1.0, ge=-1e6, le=1e6)
    mlp_out_gate: bool = False  # 04-16's scalar-per-token MLP output gate
    smear: Smear = "none"

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    @property
    def embed_dim(self) -> int:
        return self.embedding_dim or self.model_dim

    @property
    def virtual_layers(self) -> tuple[int, ...]:
        n = self.num_layers
        if not self.num_loops:
            return tuple(range(n))
        seg = tuple(range(self.loop_start, self.loop_end + 1))
        return (*range(self.loop_start), *seg * (self.num_loops + 1), *range(self.loop_end + 1, n))

    @property
    def num_virtual_layers(self) -> int:
        return len(self.virtual_layers)

    @property
    def num_skips(self) -> int:
        n = self.num_virtual_layers
        return min(n // 2, n - n // 2)

    @model_validator(mode="after")
    def _check(self) -> "VarlenConfig":
        d, h, kv = self.model_dim, self.num_heads, self.num_kv_heads
        if d % h or h % kv:
            raise ValueError(f"model_dim {d}, num_heads {h}, num_kv_heads {kv} do not divide")
        hd = d // h
        if hd % 2:
            raise ValueError(f"head_dim {hd} must be even for RoPE")
        rd = self.rope_dims
        if rd and (rd % 2 or not 4 <= rd <= hd):
            raise ValueError(f"rope_dims {rd} must be 0 (whole head) or even in [4, {hd}]")
        if self.mlp_hidden < 1:
            raise ValueError(f"mlp_mult {self.mlp_mult} gives an empty MLP")
        if self.num_loops and not self.loop_start <= self.loop_end < self.num_layers:
            raise ValueError(
                f"loop {self.loop_start}..{self.loop_end} is not inside {self.num_layers} layers"
            )
        if self.num_virtual_layers > 1024:
            raise ValueError(f"{self.num_virtual_layers} virtual layers are too many")
        w = self.gate_window
        if (self.gate in ("attn_out", "sparse") or self.smear != "none") and w > self.embed_dim:
            raise ValueError(f"gate_window {w} exceeds the width {self.embed_dim}")
        return self

    def replace(self, **changes: Any) -> "VarlenConfig":
        return VarlenConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> "VarlenConfig":
        return parse_document(cls, doc, "model config")


class Attention(nn.Module):
    """GQA attention: q/k RMS-norm, partial RoPE, per-head q gain, causal within documents,
    optional XSA, then the configured output gate."""

    def __init__(self, cfg: VarlenConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        d, h, w = cfg.model_dim, cfg.num_heads, cfg.gate_window
        self.c_q = role(CastedLinear(d, d, bias=False), MATRIX)
        self.c_k = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.c_v = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.proj = role(CastedLinear(d, d, bias=False), MATRIX)
        self.q_gain = role(nn.Parameter(torch.full((h,), cfg.qk_gain_init)), CONTROL)
        if cfg.gate == "attn_out":
            self.attn_gate_proj = role(CastedLinear(w, h, bias=False), CONTROL)
        elif cfg.gate == "dense":
            self.attn_gate_w = role(nn.Parameter(torch.zeros(h, d)), CONTROL)
        elif cfg.gate == "sparse":
            self.attn_gate_w = role(nn.Parameter(torch.zeros(h, w)), CONTROL)
        self.use_xsa = layer >= cfg.num_layers - cfg.xsa_last_n

    def forward(self, x: Tensor, rope: Rope, ctx: AttentionContext, slot: int) -> Tensor:
        cfg = self.cfg
        b, t, d = x.shape
        q_raw = plus_delta(self.c_q(x), adapter_delta(ctx, "q", slot, x))
        q = q_raw.reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = plus_delta(self.c_k(x), adapter_delta(ctx, "k", slot, x)).reshape(
            b, t, cfg.num_kv_heads, -1
        )
        v = plus_delta(self.c_v(x), adapter_delta(ctx, "v", slot, x)).reshape(
            b, t, cfg.num_kv_heads, -1
        )
        y = qk_attention(q, k, v, rope, self.q_gain, ctx, self.use_xsa)
        w = cfg.gate_window
        if cfg.gate == "attn_out":
            src = q_raw if cfg.attn_out_gate_src == "q" else x
            y = y * (2.0 * torch.sigmoid(self.attn_gate_proj(src[..., :w])))[..., None]
        elif cfg.gate == "dense":
            y = y * torch.sigmoid(F.linear(x, self.attn_gate_w.to(x.dtype)))[..., None]
        elif cfg.gate == "sparse":
            g = cfg.sparse_gate_scale * F.linear(x[..., :w], self.attn_gate_w.to(x.dtype))
            y = y * torch.sigmoid(g)[..., None]
        return plus_delta(self.proj(y.reshape(b, t, d)), adapter_delta(ctx, "o", slot, x))


class MLP(nn.Module):
    """LeakyReLU(0.5)² MLP, optionally scaled per token by 2σ(W x[:, :w]) (04-16)."""

    def __init__(self, cfg: VarlenConfig):
        super().__init__()
        self.cfg = cfg
        self.fc = role(CastedLinear(cfg.model_dim, cfg.mlp_hidden, bias=False), MATRIX)
        self.proj = role(CastedLinear(cfg.mlp_hidden, cfg.model_dim, bias=False), MATRIX)
        if cfg.mlp_out_gate:
            self.mlp_gate_proj = role(CastedLinear(cfg.gate_window, 1, bias=False), CONTROL)

    def forward(self, x: Tensor, ctx: AttentionContext, slot: int) -> Tensor:
        out = self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())
        if self.cfg.mlp_out_gate:
            out = out * (2.0 * torch.sigmoid(self.mlp_gate_proj(x[..., : self.cfg.gate_window])))
        return plus_delta(out, adapter_delta(ctx, "mlp", slot, x))


class Block(nn.Module):
    """Pre-norm block with the x0 residual mix and per-channel branch scales."""

    def __init__(self, cfg: VarlenConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)
        self.ln = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0

    def _attn(self, x: Tensor, x0: Tensor, rope: Rope, ctx: AttentionContext, slot: int):
        """(x_in, scaled attention output) of the x0-mixed input."""
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0] * x + mix[1] * x0
        a = self.attn(rms_norm(x_in) * self.ln, rope, ctx, slot)
        return x_in, self.attn_scale.to(x.dtype) * a

    def _mlp(self, x: Tensor, ctx: AttentionContext, slot: int) -> Tensor:
        return self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.ln, ctx, slot)

    def forward(self, x: Tensor, x0: Tensor, rope: Rope, ctx: AttentionContext, slot: int):
        x_in, a = self._attn(x, x0, rope, ctx, slot)
        x_out = x_in + a
        return x_out + self._mlp(x_out, ctx, slot)


class VarlenGPT(nn.Module):
    """Token embedding (+ SmearGate) → looped U-Net stack with two residual lanes →
    final RMSNorm → tied softcapped head."""

    config_class = VarlenConfig

    def __init__(self, config: VarlenConfig):
        super().__init__()
        cfg = self.config = config
        d, e, n = cfg.model_dim, cfg.embed_dim, cfg.num_layers
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, e), EMBEDDING)
        if e != d:
            self.embed_proj = role(CastedLinear(e, d, bias=False), MATRIX)
            self.head_proj = role(CastedLinear(d, e, bias=False), MATRIX)
        if cfg.smear != "none":
            self.smear_gate = role(CastedLinear(cfg.gate_window, 1, bias=False), CONTROL)
            self.smear_lambda = role(nn.Parameter(torch.zeros(1)), CONTROL)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(n))
        self.skip_weights = role(nn.Parameter(torch.ones(cfg.num_skips, d)), CONTROL)
        if cfg.skip_gates:
            self.skip_gates = role(nn.Parameter(torch.zeros(cfg.num_skips, d)), CONTROL)
        lambdas = torch.ones(n, 2, 2)
        self.parallel_post_lambdas = role(nn.Parameter(lambdas), CONTROL)
        self.parallel_resid_lambdas = role(nn.Parameter(torch.full((n, 2), 1.1)), CONTROL)
        if not cfg.tie_embeddings:
            self.lm_head = role(CastedLinear(e, cfg.vocab_size, bias=False), EMBEDDING)
        self._init_weights()
        self._roles = roles_of(self)

    def _init_weights(self) -> None:
        """Tied table N(0, std), orthogonal matrices (zero output projections), zero gates."""
        if self.tok_emb.weight.is_meta:
            return
        if self.config.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, std=self.config.tied_embed_init_std)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name.endswith(("attn.proj", "mlp.proj", "gate_proj", "smear_gate", "lm_head")):
                    nn.init.zeros_(m.weight)
                elif min(m.weight.shape) >= 64:
                    nn.init.orthogonal_(m.weight)

    def parameter_roles(self) -> dict[str, Role]:
        return roles_of(self, self._roles)

    @property
    def head_weight(self) -> Tensor:
        return self.tok_emb.weight if self.config.tie_embeddings else self.lm_head.weight

    def _skip(self, x: Tensor, j: int, skip: Tensor) -> Tensor:
        s = self.skip_weights[j].to(x.dtype) * skip
        if self.config.skip_gates:
            return torch.lerp(s, x, torch.sigmoid(self.skip_gates[j].to(x.dtype)))
        return x + s

    def _smear(self, x: Tensor, ids: Tensor) -> Tensor:
        """x_t += λ σ(W x_t[:w]) x_{t−1} for t ≥ 1 (not into a BOS with the fix)."""
        w = self.config.gate_window
        g = self.smear_lambda.to(x.dtype) * torch.sigmoid(self.smear_gate(x[:, 1:, :w]))
        if self.config.smear == "smear_bos":
            g = g.masked_fill((ids[:, 1:] == BOS_ID).unsqueeze(-1), 0.0)
        return torch.cat((x[:, :1], x[:, 1:] + g * x[:, :-1]), dim=1)

    def _parallel(self, i: int, lane0: Tensor, lane1: Tensor, x0: Tensor, rope: Rope, ctx, slot):
        """One block over both lanes: attention reads lane 0, the MLP lane 1, and both
        outputs flow into both lanes through the layer's lambdas."""
        block = self.blocks[i]
        _, a = block._attn(lane0, x0, rope, ctx, slot)
        m = block._mlp(lane1, ctx, slot)
        resid = self.parallel_resid_lambdas[i].to(lane0.dtype)
        post = self.parallel_post_lambdas[i].to(lane0.dtype)
        new0 = resid[0] * lane0 + post[0, 0] * a + post[1, 0] * m
        new1 = resid[1] * lane1 + post[0, 1] * a + post[1, 1] * m
        return new0, new1

    def forward_hidden(
        self, ids: Tensor, rows: Tensor | None = None, attention: AttentionContext | None = None
    ) -> Tensor:
        """[B,T] ids -> [B,T,d_embed] hidden after the final norm (and head projection);
        with `rows` ([B,R]) only those positions (computed in full, then taken). Attention
        stays inside the documents the context's segments name, if any."""
        cfg = self.config
        ctx = attention if attention is not None else AttentionContext()
        x = self.tok_emb(ids)
        if cfg.smear != "none":
            x = self._smear(x, ids)
        x = rms_norm(x)
        if cfg.embed_dim != cfg.model_dim:
            x = self.embed_proj(x)
        x0 = x
        rope = rotary(cfg, ids.size(1), ids.device, ntk=cfg.rope_yarn)
        layers = cfg.virtual_layers
        num_enc = len(layers) // 2
        skips: list[Tensor] = []
        for slot, i in enumerate(layers[:num_enc]):
            x = self.blocks[i](x, x0, rope, ctx, slot)
            skips.append(x)
        psl = cfg.parallel_start
        lane0: Tensor | None = None
        lane1 = x
        for j, i in enumerate(layers[num_enc:]):
            slot = num_enc + j
            if psl > 0 and i >= psl:
                if lane0 is None:
                    lane0 = lane1 = x
                if j < cfg.num_skips and skips:
                    lane0 = self._skip(lane0, j, skips.pop())
                lane0, lane1 = self._parallel(i, lane0, lane1, x0, rope, ctx, slot)
            else:  # (after the split, as in the records, this stream feeds nothing)
                if j < cfg.num_skips and skips:
                    x = self._skip(x, j, skips.pop())
                x = self.blocks[i](x, x0, rope, ctx, slot)
        if lane0 is not None:
            if cfg.final_lane == "mlp":
                x = lane1
            elif cfg.final_lane == "attn":
                x = lane0
            else:
                x = 0.5 * (lane0 + lane1)
        x = rms_norm(x)
        if cfg.embed_dim != cfg.model_dim:
            x = self.head_proj(x)
        return x if rows is None else take_rows(x, rows)

    def logits(self, hidden: Tensor, adapter: Adapter | None = None) -> Tensor:
        """softcap · tanh((hidden·Wᵀ + the adapter's head update) / softcap)."""
        c = self.config.logit_softcap
        z = F.linear(hidden, self.head_weight.to(hidden.dtype))
        if adapter is not None:
            z = plus_delta(z, adapter.delta("head", -1, hidden))
        return c * torch.tanh(z / c)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        logits = self.logits(self.forward_hidden(ids))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


# ------------------------------------------------------------------ from a record folder


def config_from_record(hparams: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> VarlenConfig:
    """The config of a varlen record: sizes and which gates exist from the tensors, the
    rest from its hyperparameters (lower-case reference names). A missing key is a
    ConfigError naming it."""

    def need(key: str) -> Any:
        if key not in hparams:
            raise ConfigError(f"hyperparameter {key} is needed for {ARCH} and was not found")
        return hparams[key]

    def flag(key: str) -> bool:
        v = hparams.get(key, False)
        return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true")

    vocab, e = shapes["tok_emb.weight"]
    d = shapes["blocks.0.attn.c_q.weight"][0]
    heads = shapes["blocks.0.attn.q_gain"][0]
    n = sum(1 for k in shapes if k.endswith(".attn.c_q.weight"))
    gate: Gate = "none"
    if "blocks.0.attn.attn_gate_proj.weight" in shapes:
        gate = "attn_out"
    elif "blocks.0.attn.attn_gate_w" in shapes:
        gate = (
            "dense"
            if shapes["blocks.0.attn.attn_gate_w"][1] == d and not flag("sparse_attn_gate_enabled")
            else "sparse"
        )
    smear: Smear = "none"
    if "smear_lambda" in shapes:
        smear = "smear_bos" if hparams.get("smear_bos_fix", False) else "smear"
    window = int(hparams.get("gate_window", hparams.get("gate_width", 12)))
    if gate in ("attn_out", "sparse"):
        window = shapes[
            "blocks.0.attn.attn_gate_proj.weight"
            if gate == "attn_out"
            else "blocks.0.attn.attn_gate_w"
        ][1]
    elif "smear_gate.weight" in shapes:
        window = shapes["smear_gate.weight"][1]
    doc = {
        "vocab_size": vocab,
        "num_layers": n,
        "model_dim": d,
        "embedding_dim": 0 if e == d else e,
        "num_heads": heads,
        "num_kv_heads": shapes["blocks.0.attn.c_k.weight"][0] // (d // heads),
        "mlp_mult": shapes["blocks.0.mlp.fc.weight"][0] / d,
        "tie_embeddings": "lm_head.weight" not in shapes,
        "logit_softcap": float(need("logit_softcap")),
        "rope_base": float(need("rope_base")),
        "rope_dims": int(need("rope_dims")),
        "rope_yarn": flag("rope_yarn"),
        "rope_train_seq_len": int(need("train_seq_len")),
        "qk_gain_init": float(need("qk_gain_init")),
        "ln_scale": flag("ln_scale"),
        "xsa_last_n": min(int(need("xsa_last_n")), n),
        "skip_gates": "skip_gates" in shapes,
        "num_loops": int(need("num_loops")),
        "loop_start": int(need("loop_start")),
        "loop_end": int(need("loop_end")),
        "parallel_start": max(int(need("parallel_start_layer")), 0),
        "final_lane": str(hparams.get("parallel_final_lane", "mean")).lower(),
        "gate": gate,
        "gate_window": window,
        "attn_out_gate_src": str(
            hparams.get("attn_out_gate_src", hparams.get("gate_attn_src", "proj"))
        ),
        "sparse_gate_scale": float(hparams.get("sparse_attn_gate_scale", 1.0)),
        "mlp_out_gate": "blocks.0.mlp.mlp_gate_proj.weight" in shapes,
        "smear": smear,
    }
    return VarlenConfig.parse(doc)
