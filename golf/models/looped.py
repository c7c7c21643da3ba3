"""The looped SP8192 GPT of the Parameter Golf records 2026-04-05 … 2026-04-09, one file.

Clark's stack (PR #1394 lineage): 11 physical blocks, MLP ×4 with LeakyReLU(0.5)², partial
RoPE, per-head q gain, XSA, gated U-Net skips, tied softcapped head — and *looped blocks*:
layers `loop_start..loop_end` run `num_loops + 1` times in place, and the list of
virtual layers is cut in half for the U-Net encoder/decoder. From a start layer the
blocks may run their residual in parallel, in one of two ways the records used:

* `gptj` (04-06 Hessian, 04-09 A2, 04-09 3LayerRecur): one stream,
  `x + a·attn(n(x_in)) + m·mlp(n(x_in))`, the MLP reading the block input;
* `lanes` (04-08): two streams from the first decoder layer at or past the start; lane 0
  runs only the attention sublayers (with the x0 mix and the skips), lane 1 only the MLP
  sublayers, and the head reads `m·lane0 + (1 − m)·lane1` with a learned scalar m.

Parameter names equal the records' state dicts (`blocks.{i}.attn.c_q.weight`, …,
`skip_weights`, `skip_gates`, `lane_merge`), so an imported artifact loads strictly.
Every parameter is tagged with its Role where it is created.
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

ARCH = "looped-sp8192"

Parallel = Literal["none", "gptj", "lanes"]
Rope = tuple[Tensor, Tensor]


class LoopedConfig(BaseModel):
    """Every knob that fixes the looped GPT's tensors and forward math, bounded like
    ModelConfig because it arrives in untrusted artifact metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(8192, ge=2, le=1 << 18)
    num_layers: int = Field(11, ge=1, le=256)
    model_dim: int = Field(512, ge=2, le=16384)
    # 0: the embedding width is model_dim (no embed/head projections).
    embedding_dim: int = Field(0, ge=0, le=16384)
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_mult: float = Field(4.0, gt=0, le=64)
    tie_embeddings: bool = True
    tied_embed_init_std: float = Field(0.005, ge=0, le=1)
    logit_softcap: float = Field(30.0, gt=0, le=1e4)
    rope_base: float = Field(10000.0, gt=0, le=1e9)
    rope_dims: int = Field(16, ge=0, le=16384)
    # The records build Rotary with train_seq_len=h.train_seq_len: NTK-scaled beyond it.
    rope_train_seq_len: int = Field(2048, ge=1, le=1 << 20)
    qk_gain_init: float = Field(5.0, ge=-1e3, le=1e3)
    ln_scale: bool = True
    xsa_last_n: int = Field(11, ge=0, le=1024)  # physical layers, from the top
    skip_gates: bool = True
    num_loops: int = Field(2, ge=0, le=64)
    loop_start: int = Field(4, ge=0, le=255)
    loop_end: int = Field(5, ge=0, le=255)
    parallel: Parallel = "none"
    parallel_start: int = Field(7, ge=0, le=256)

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
        """Physical block at each depth: the loop segment repeated in place."""
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
    def _check(self) -> "LoopedConfig":
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
        return self

    def replace(self, **changes: Any) -> "LoopedConfig":
        return LoopedConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> "LoopedConfig":
        return parse_document(cls, doc, "model config")


class Attention(nn.Module):
    """GQA attention: q/k RMS-norm, partial RoPE, per-head q gain, causal, optional XSA."""

    def __init__(self, cfg: LoopedConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        self.c_q = role(CastedLinear(d, d, bias=False), MATRIX)
        self.c_k = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.c_v = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.proj = role(CastedLinear(d, d, bias=False), MATRIX)
        self.proj._zero_init = True
        self.q_gain = role(nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init)), CONTROL)
        self.use_xsa = layer >= cfg.num_layers - cfg.xsa_last_n

    def forward(self, x: Tensor, rope: Rope, ctx: AttentionContext, slot: int) -> Tensor:
        cfg = self.cfg
        b, t, d = x.shape
        q = plus_delta(self.c_q(x), adapter_delta(ctx, "q", slot, x)).reshape(
            b, t, cfg.num_heads, -1
        )
        k = plus_delta(self.c_k(x), adapter_delta(ctx, "k", slot, x)).reshape(
            b, t, cfg.num_kv_heads, -1
        )
        v = plus_delta(self.c_v(x), adapter_delta(ctx, "v", slot, x)).reshape(
            b, t, cfg.num_kv_heads, -1
        )
        y = qk_attention(q, k, v, rope, self.q_gain, ctx, self.use_xsa)
        return plus_delta(self.proj(y.reshape(b, t, d)), adapter_delta(ctx, "o", slot, x))


class MLP(nn.Module):
    """LeakyReLU(0.5)² MLP."""

    def __init__(self, cfg: LoopedConfig):
        super().__init__()
        self.fc = role(CastedLinear(cfg.model_dim, cfg.mlp_hidden, bias=False), MATRIX)
        self.proj = role(CastedLinear(cfg.mlp_hidden, cfg.model_dim, bias=False), MATRIX)
        self.proj._zero_init = True

    def forward(self, x: Tensor, ctx: AttentionContext, slot: int) -> Tensor:
        out = self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())
        return plus_delta(out, adapter_delta(ctx, "mlp", slot, x))


class Block(nn.Module):
    """Pre-norm block with the x0 residual mix; sequential or GPT-J parallel, and the two
    half-blocks (`attn_half`, `mlp_half`) that the two-lane residual runs separately."""

    def __init__(self, cfg: LoopedConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)
        self.ln = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0
        self.gptj = cfg.parallel == "gptj" and layer >= cfg.parallel_start

    def attn_half(self, x: Tensor, x0: Tensor, rope: Rope, ctx: AttentionContext, slot: int):
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0] * x + mix[1] * x0
        a = self.attn(rms_norm(x_in) * self.ln, rope, ctx, slot)
        return x_in + self.attn_scale.to(x.dtype) * a

    def mlp_half(self, x: Tensor, ctx: AttentionContext, slot: int) -> Tensor:
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.ln, ctx, slot)

    def forward(self, x: Tensor, x0: Tensor, rope: Rope, ctx: AttentionContext, slot: int):
        if not self.gptj:
            return self.mlp_half(self.attn_half(x, x0, rope, ctx, slot), ctx, slot)
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0] * x + mix[1] * x0
        h = rms_norm(x_in) * self.ln
        a = self.attn_scale.to(x.dtype) * self.attn(h, rope, ctx, slot)
        return x_in + a + self.mlp_scale.to(x.dtype) * self.mlp(h, ctx, slot)


class LoopedGPT(nn.Module):
    """Token embedding → looped U-Net stack (gated skips, optional parallel residual) →
    final RMSNorm → tied softcapped head."""

    config_class = LoopedConfig

    def __init__(self, config: LoopedConfig):
        super().__init__()
        cfg = self.config = config
        d, e = cfg.model_dim, cfg.embed_dim
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, e), EMBEDDING)
        if e != d:
            self.embed_proj = role(CastedLinear(e, d, bias=False), MATRIX)
            self.head_proj = role(CastedLinear(d, e, bias=False), MATRIX)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.skip_weights = role(nn.Parameter(torch.ones(cfg.num_skips, d)), CONTROL)
        if cfg.skip_gates:
            self.skip_gates = role(nn.Parameter(torch.zeros(cfg.num_skips, d)), CONTROL)
        if cfg.parallel == "lanes" and cfg.parallel_start > 0:
            self.lane_merge = role(nn.Parameter(torch.tensor(0.5)), CONTROL)
        if not cfg.tie_embeddings:
            self.lm_head = role(CastedLinear(e, cfg.vocab_size, bias=False), EMBEDDING)
            self.lm_head._zero_init = True
        self._init_weights()
        self._roles = roles_of(self)

    def _init_weights(self) -> None:
        """The records' init: tied table N(0, std), orthogonal matrices (≥ 64 each side),
        zero output projections."""
        if self.tok_emb.weight.is_meta:
            return
        if self.config.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, std=self.config.tied_embed_init_std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if getattr(m, "_zero_init", False):
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

    def forward_hidden(
        self, ids: Tensor, rows: Tensor | None = None, attention: AttentionContext | None = None
    ) -> Tensor:
        """[B,T] ids -> [B,T,d_embed] hidden after the final norm (and head projection);
        with `rows` ([B,R]) only those positions (computed in full, then taken)."""
        cfg = self.config
        ctx = attention if attention is not None else AttentionContext()
        x = rms_norm(self.tok_emb(ids))
        if cfg.embed_dim != cfg.model_dim:
            x = self.embed_proj(x)
        x0 = x
        rope = rotary(cfg, ids.size(1), ids.device)
        layers = cfg.virtual_layers
        num_enc = len(layers) // 2
        skips: list[Tensor] = []
        for slot, i in enumerate(layers[:num_enc]):
            x = self.blocks[i](x, x0, rope, ctx, slot)
            skips.append(x)
        lanes = cfg.parallel == "lanes" and cfg.parallel_start > 0
        lane0: Tensor | None = None
        lane1 = x
        for j, i in enumerate(layers[num_enc:]):
            block, slot = self.blocks[i], num_enc + j
            if lane0 is None:
                if j < cfg.num_skips and skips:
                    x = self._skip(x, j, skips.pop())
                if lanes and i >= cfg.parallel_start:  # both lanes start from x here
                    lane0 = block.attn_half(x, x0, rope, ctx, slot)
                    lane1 = block.mlp_half(x, ctx, slot)
                else:
                    x = block(x, x0, rope, ctx, slot)
            else:
                if j < cfg.num_skips and skips:
                    lane0 = self._skip(lane0, j, skips.pop())
                lane0 = block.attn_half(lane0, x0, rope, ctx, slot)
                lane1 = block.mlp_half(lane1, ctx, slot)
        if lane0 is not None:
            m = self.lane_merge.to(lane0.dtype)
            x = m * lane0 + (1.0 - m) * lane1
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


def config_from_record(hparams: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> LoopedConfig:
    """The config of a looped record: sizes from the tensors, the rest from its
    hyperparameters (lower-case reference names). A missing key is a ConfigError naming it.

    `parallel` follows the record's code, which the caller names through the hyperparameter
    `parallel_mode` ("gptj" for `parallel_residual_start`, "lanes" for the 04-08 lanes,
    whose start layer is read from the environment inside GPT.__init__, default 7).
    """

    def need(key: str) -> Any:
        if key not in hparams:
            raise ConfigError(f"hyperparameter {key} is needed for {ARCH} and was not found")
        return hparams[key]

    vocab, e = shapes["tok_emb.weight"]
    d = shapes["blocks.0.attn.c_q.weight"][0]
    heads = shapes["blocks.0.attn.q_gain"][0]
    kv = shapes["blocks.0.attn.c_k.weight"][0] // (d // heads)
    n = sum(1 for k in shapes if k.endswith(".attn.c_q.weight"))
    mode = need("parallel_mode")
    if mode == "gptj":
        start = int(need("parallel_residual_start"))
        parallel = "gptj" if start >= 0 else "none"
    elif mode == "lanes":
        start = int(hparams.get("parallel_start_layer", 7))
        parallel = "lanes" if "lane_merge" in shapes else "none"
    else:
        start, parallel = 0, "none"
    doc = {
        "vocab_size": vocab,
        "num_layers": n,
        "model_dim": d,
        "embedding_dim": 0 if e == d else e,
        "num_heads": heads,
        "num_kv_heads": kv,
        "mlp_mult": shapes["blocks.0.mlp.fc.weight"][0] / d,
        "tie_embeddings": "lm_head.weight" not in shapes,
        "logit_softcap": float(need("logit_softcap")),
        "rope_base": float(need("rope_base")),
        "rope_dims": int(need("rope_dims")),
        "rope_train_seq_len": int(need("train_seq_len")),
        "qk_gain_init": float(need("qk_gain_init")),
        "ln_scale": bool(need("ln_scale")),
        "xsa_last_n": min(int(need("xsa_last_n")), n),
        "skip_gates": "skip_gates" in shapes,
        "num_loops": int(need("num_loops")),
        "loop_start": int(need("loop_start")),
        "loop_end": int(need("loop_end")),
        "parallel": parallel,
        "parallel_start": max(start, 0),
    }
    return LoopedConfig.parse(doc)
