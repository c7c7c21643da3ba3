"""The SP4096 depth-recurrence GPT of the records 2026-04-03 and 2026-04-04, one file.

11 physical blocks (MLP ×4, LeakyReLU(0.5)², partial RoPE, q gain, XSA, value embeddings
on chosen *physical* layers, gated U-Net skips, tied softcapped head) where the layers
`recur_layers` run a second time right after the last of them: virtual layers
`[0 .. r_max, *recur_layers, r_max+1 .. n-1]`, encoder = the first half of them. Unlike
the seed family, a repeated layer reuses the whole physical block (its scales and mixes
too), and the skip weights are sized by the *physical* halves. The two records spend the
skips differently, a fact of their code (`skip_rule`):

* `clamp` (04-03): every decoder layer takes a skip while any is left, weight index
  min(i, skips − 1);
* `first` (04-04): decoder layer i takes one only for i < skips; and from the first
  decoder layer whose physical index reaches `parallel_start` the residual splits into
  two lanes (lane 0 attention with the x0 mix, lane 1 MLP), merged by a learned scalar
  `lane_merge` — the skips of later layers still land on the abandoned single stream,
  which feeds nothing (the record's behaviour, kept).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from golf.models.attention import AttentionContext
from golf.models.gpt import (
    CastedLinear,
    ScaledEmbedding,
    qk_attention,
    rms_norm,
    rotary,
    take_rows,
)
from golf.models.roles import Role, role, roles_of
from golf.spec.errors import ConfigError, parse_document

MATRIX, EMBEDDING, CONTROL = Role.MATRIX, Role.EMBEDDING, Role.CONTROL

ARCH = "recur-sp4096"
Rope = tuple[Tensor, Tensor]


class RecurConfig(BaseModel):
    """Every knob that fixes the model's tensors and forward math (bounded: it arrives in
    untrusted artifact metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(4096, ge=2, le=1 << 18)
    num_layers: int = Field(11, ge=1, le=256)
    model_dim: int = Field(512, ge=2, le=16384)
    embedding_dim: int = Field(0, ge=0, le=16384)
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_mult: float = Field(4.0, gt=0, le=64)
    tie_embeddings: bool = True
    tied_embed_init_std: float = Field(0.005, ge=0, le=1)
    logit_softcap: float = Field(30.0, gt=0, le=1e4)
    rope_base: float = Field(10000.0, gt=0, le=1e9)
    rope_dims: int = Field(16, ge=0, le=16384)
    rope_train_seq_len: int = Field(2048, ge=1, le=1 << 20)
    qk_gain_init: float = Field(4.0, ge=-1e3, le=1e3)
    ln_scale: bool = True
    xsa_last_n: int = Field(11, ge=0, le=1024)
    skip_gates: bool = True
    ve_dim: int = Field(128, ge=0, le=16384)
    ve_layers: tuple[int, ...] = (9, 10)  # physical indices; () disables
    recur_layers: tuple[int, ...] = (4, 5)
    skip_rule: Literal["clamp", "first"] = "first"
    parallel_start: int = Field(0, ge=0, le=256)  # 0: no lanes

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
        if not self.recur_layers:
            return tuple(range(n))
        cut = self.recur_layers[-1] + 1
        return (*range(cut), *self.recur_layers, *range(cut, n))

    @property
    def num_virtual_layers(self) -> int:
        return len(self.virtual_layers)

    @property
    def num_skips(self) -> int:
        n = self.num_layers
        return min(n // 2, n - n // 2)

    @property
    def lanes(self) -> bool:
        return 0 < self.parallel_start < self.num_layers

    @model_validator(mode="after")
    def _check(self) -> RecurConfig:
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
        for name in ("recur_layers", "ve_layers"):
            layers = getattr(self, name)
            if any(not 0 <= i < self.num_layers for i in layers) or len(set(layers)) < len(layers):
                raise ValueError(
                    f"{name} {list(layers)} must be distinct layers of {self.num_layers}"
                )
        if list(self.recur_layers) != sorted(self.recur_layers):
            raise ValueError(f"recur_layers {list(self.recur_layers)} must be increasing")
        if self.ve_layers and not self.ve_dim:
            raise ValueError("ve_layers need ve_dim > 0")
        if self.lanes and self.skip_rule != "first":
            raise ValueError("two lanes exist only in the 'first' skip rule's record (04-04)")
        return self

    def replace(self, **changes: Any) -> RecurConfig:
        return RecurConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> RecurConfig:
        return parse_document(cls, doc, "model config")


class Attention(nn.Module):
    """GQA attention: value embedding added to v, q/k RMS-norm, partial RoPE, q gain, XSA."""

    def __init__(self, cfg: RecurConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        self.c_q = role(CastedLinear(d, d, bias=False), MATRIX)
        self.c_k = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.c_v = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
        self.proj = role(CastedLinear(d, d, bias=False), MATRIX)
        self.q_gain = role(nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init)), CONTROL)
        self.use_xsa = layer >= cfg.num_layers - cfg.xsa_last_n

    def forward(self, x: Tensor, rope: Rope, ve: Tensor | None, ctx: AttentionContext) -> Tensor:
        cfg = self.cfg
        b, t, d = x.shape
        q = self.c_q(x).reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = self.c_k(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = self.c_v(x)
        if ve is not None:
            v = v + ve
        v = v.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        y = qk_attention(q, k, v, rope, self.q_gain, ctx, self.use_xsa)
        return self.proj(y.reshape(b, t, d))


class MLP(nn.Module):
    """LeakyReLU(0.5)² MLP."""

    def __init__(self, cfg: RecurConfig):
        super().__init__()
        self.fc = role(CastedLinear(cfg.model_dim, cfg.mlp_hidden, bias=False), MATRIX)
        self.proj = role(CastedLinear(cfg.mlp_hidden, cfg.model_dim, bias=False), MATRIX)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())


class Block(nn.Module):
    """Pre-norm block with the x0 mix; its halves also run as the two lanes."""

    def __init__(self, cfg: RecurConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)
        self.ln = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0

    def attn_half(self, x: Tensor, x0: Tensor, rope: Rope, ve, ctx: AttentionContext) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0] * x + mix[1] * x0
        return x_in + self.attn_scale.to(x.dtype) * self.attn(
            rms_norm(x_in) * self.ln, rope, ve, ctx
        )

    def mlp_half(self, x: Tensor) -> Tensor:
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.ln)

    def forward(self, x: Tensor, x0: Tensor, rope: Rope, ve, ctx: AttentionContext) -> Tensor:
        return self.mlp_half(self.attn_half(x, x0, rope, ve, ctx))


class RecurGPT(nn.Module):
    """Token embedding → U-Net stack over virtual layers (repeated physical blocks, value
    embeddings, optional two lanes) → final RMSNorm → tied softcapped head."""

    config_class = RecurConfig

    def __init__(self, config: RecurConfig):
        super().__init__()
        cfg = self.config = config
        d, e = cfg.model_dim, cfg.embed_dim
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, e), EMBEDDING)
        if e != d:
            self.embed_proj = role(CastedLinear(e, d, bias=False), MATRIX)
            self.head_proj = role(CastedLinear(d, e, bias=False), MATRIX)
        self.skip_weights = role(nn.Parameter(torch.ones(cfg.num_skips, d)), CONTROL)
        if cfg.skip_gates:
            self.skip_gates = role(nn.Parameter(torch.zeros(cfg.num_skips, d)), CONTROL)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        if cfg.ve_layers:
            self.ve_shared = ScaledEmbedding(cfg.vocab_size, cfg.ve_dim, cfg.kv_dim, 0.1)
            scales = (nn.Parameter(torch.ones(1)) for _ in cfg.ve_layers)
            self.ve_layer_scales = role(nn.ParameterList(scales), CONTROL)
        if cfg.lanes:
            self.lane_merge = role(nn.Parameter(torch.tensor(0.5)), CONTROL)
        if not cfg.tie_embeddings:
            self.lm_head = role(CastedLinear(e, cfg.vocab_size, bias=False), EMBEDDING)
        if not self.tok_emb.weight.is_meta and cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self._roles = roles_of(self)

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
        ve_base = self.ve_shared(ids) if cfg.ve_layers else None

        def ve(p: int) -> Tensor | None:
            if ve_base is None or p not in cfg.ve_layers:
                return None
            return ve_base * self.ve_layer_scales[cfg.ve_layers.index(p)].to(ve_base.dtype)

        layers = cfg.virtual_layers
        num_enc = len(layers) // 2
        skips: list[Tensor] = []
        for p in layers[:num_enc]:
            x = self.blocks[p](x, x0, rope, ve(p), ctx)
            skips.append(x)
        lane0: Tensor | None = None
        lane1 = x
        for i, p in enumerate(layers[num_enc:]):
            block = self.blocks[p]
            if cfg.skip_rule == "clamp":
                if skips:
                    x = self._skip(x, min(i, cfg.num_skips - 1), skips.pop())
                x = block(x, x0, rope, ve(p), ctx)
                continue
            if skips and i < cfg.num_skips:  # after the split this stream feeds nothing
                x = self._skip(x, i, skips.pop())
            if cfg.lanes and lane0 is None and p >= cfg.parallel_start:
                lane0 = lane1 = x
            if lane0 is not None:
                lane0 = block.attn_half(lane0, x0, rope, ve(p), ctx)
                lane1 = block.mlp_half(lane1)
            else:
                x = block(x, x0, rope, ve(p), ctx)
        if lane0 is not None:
            m = self.lane_merge.to(lane0.dtype)
            x = m * lane0 + (1 - m) * lane1
        x = rms_norm(x)
        if cfg.embed_dim != cfg.model_dim:
            x = self.head_proj(x)
        return x if rows is None else take_rows(x, rows)

    def logits(self, hidden: Tensor) -> Tensor:
        c = self.config.logit_softcap
        return c * torch.tanh(F.linear(hidden, self.head_weight.to(hidden.dtype)) / c)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        logits = self.logits(self.forward_hidden(ids))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def _layers(v: Any) -> tuple[int, ...]:
    if isinstance(v, str):
        return tuple(int(x) for x in v.split(",") if x.strip())
    return tuple(int(x) for x in v)


def config_from_record(hparams: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> RecurConfig:
    """The config of a recurrence record: sizes from the tensors, the rest from its
    hyperparameters and the code traits (`skip_rule`)."""

    def need(key: str) -> Any:
        if key not in hparams:
            raise ConfigError(f"hyperparameter {key} is needed for {ARCH} and was not found")
        return hparams[key]

    for name in shapes:
        if name.startswith(("repeat_mlp.", "parallel_post_lambdas", "parallel_resid_lambdas")):
            raise ConfigError(f"tensor {name}: untied repeat MLPs / lambda lanes are not supported")
    if str(hparams.get("disable_layer0_attn", False)).lower() in ("1", "true"):
        raise ConfigError("disable_layer0_attn: layer-0 attention off is not supported")
    vocab, e = shapes["tok_emb.weight"]
    d = shapes["blocks.0.attn.c_q.weight"][0]
    heads = shapes["blocks.0.attn.q_gain"][0]
    n = sum(1 for k in shapes if k.endswith(".attn.c_q.weight"))
    ve = "ve_shared.embed.weight" in shapes
    recur = hparams.get("recur_layers", hparams.get("recur_layers_str"))
    if recur is None:
        raise ConfigError(f"hyperparameter recur_layers is needed for {ARCH} and was not found")
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
        "rope_train_seq_len": int(need("train_seq_len")),
        "qk_gain_init": float(need("qk_gain_init")),
        "ln_scale": bool(need("ln_scale")),
        "xsa_last_n": min(int(need("xsa_last_n")), n),
        "skip_gates": "skip_gates" in shapes,
        "ve_dim": shapes["ve_shared.embed.weight"][1] if ve else 0,
        "ve_layers": _layers(need("ve_layers")) if ve else (),
        "recur_layers": _layers(recur),
        "skip_rule": need("skip_rule"),
        "parallel_start": int(hparams.get("parallel_start_layer", 0))
        if "lane_merge" in shapes
        else 0,
    }
    return RecurConfig.parse(doc)
