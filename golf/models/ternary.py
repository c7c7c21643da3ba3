"""The ternary U-Net GPT of the record 2026-03-24 (BitNet b1.58 + factored embedding), one file.

Token embedding (width `embedding_dim`) → `embed_proj` up to `model_dim` → RMSNorm (x0) →
U-Net over `num_layers` blocks (the first half push skips, the second half pops them in
reverse, each scaled by `skip_weights[i]`, a decoder layer past the skips takes none) →
final RMSNorm → `embed_proj_rev` down to `embedding_dim` → logits against the tied
embedding plus `vocab_bias` → softcap (degree-5 polynomial of tanh clipped to ±1, or tanh).

Each block: x = mix0·x + mix1·x0; x += attn_scale·attn(rms(x)); x += mlp_scale·mlp(rms(x)).
Attention is one fused ternary qkv projection, q/k RMS-norm, RoPE (YaRN: inverse
frequencies divided along a ramp over the head dims by up to train_len / yarn_max_len),
q gain, causal GQA, then RMSNorm and a ternary output projection. The MLP is ternary
(relu² in the record; relu, leaky relu 0.01 and SwiGLU are its other options), its output
projection RMS-normed on input.

A ternary layer, as the record's: its stored float weight w (the artifact's dequantized
values) is re-quantized on every forward with the absmean of each group of `group_size`
consecutive elements, q = clamp(round(w / s)), and used as w + (q·s − w), in float32.
The FP8 layers (embedding, both projections) pass w + (fp8(w) − w): the record's QAT
straight-through estimator, exact on the fp8 values the artifact holds. The record's
fitted temperature never reaches its logits (its forward ignores the argument), so there
is none here. Depth recurrence at eval repeats each block `depth_recurrence` times.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from golf.models.attention import AttentionContext
from golf.models.gpt import qk_attention, rms_norm, take_rows
from golf.models.roles import Role, role, roles_of
from golf.spec.errors import ConfigError, parse_document

MATRIX, EMBEDDING, CONTROL = Role.MATRIX, Role.EMBEDDING, Role.CONTROL

ARCH = "ternary-unet"
Activation = Literal["relu2", "relu", "leaky_relu", "swiglu"]


class TernaryConfig(BaseModel):
    """Every knob that fixes the model's tensors and forward math (bounded: it arrives in
    untrusted artifact metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(8192, ge=2, le=1 << 18)
    num_layers: int = Field(10, ge=1, le=256)
    model_dim: int = Field(768, ge=2, le=16384)
    embedding_dim: int = Field(254, ge=0, le=16384)  # 0: no factored embedding
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_hidden: int = Field(3072, ge=1, le=1 << 17)
    activation: Activation = "relu2"
    group_size: int = Field(128, ge=1, le=1 << 16)
    fp_storage: Literal["none", "fp8", "fp4"] = "fp8"
    logit_softcap: float = Field(10.0, gt=0, le=1e4)
    softcap_type: Literal["poly", "tanh"] = "poly"
    rope_base: float = Field(5000.0, gt=0, le=1e9)
    rope_type: Literal["rope", "yarn"] = "yarn"
    yarn_max_len: int = Field(2048, ge=1, le=1 << 20)
    rope_train_seq_len: int = Field(1024, ge=1, le=1 << 20)
    qk_gain_init: float = Field(2.25, ge=-1e3, le=1e3)
    depth_recurrence: int = Field(1, ge=1, le=16)

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def embed_dim(self) -> int:
        return self.embedding_dim or self.model_dim

    @property
    def num_encoder(self) -> int:
        return self.num_layers // 2

    @property
    def tanh_head(self) -> bool:
        """Never: the head adds a vocab bias (and softcaps by poly5 in the record), so SLOT,
        which refits a delta under `cap·tanh(h·Wᵀ/cap)`, refuses this family."""
        return False

    @property
    def num_virtual_layers(self) -> int:
        return self.num_layers * self.depth_recurrence

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def num_skips(self) -> int:
        return min(self.num_encoder, self.num_layers - self.num_encoder)

    @model_validator(mode="after")
    def _check(self) -> TernaryConfig:
        d, h, kv = self.model_dim, self.num_heads, self.num_kv_heads
        if d % h or h % kv:
            raise ValueError(f"model_dim {d}, num_heads {h}, num_kv_heads {kv} do not divide")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")
        g = self.group_size
        shapes = [(self.q_rows, d), (d, d), (self.mlp_hidden, d), (d, self.mlp_hidden)]
        for rows, cols in shapes:
            if (rows * cols) % g:
                raise ValueError(f"a {rows}x{cols} ternary matrix is not whole groups of {g}")
        return self

    @property
    def q_rows(self) -> int:
        return self.model_dim + 2 * self.kv_dim

    def replace(self, **changes: Any) -> TernaryConfig:
        return TernaryConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> TernaryConfig:
        return parse_document(cls, doc, "model config")


class TernaryLinear(nn.Linear):
    """Linear whose weight is re-quantized to {-1,0,1}·absmean per group on every forward."""

    def __init__(self, cfg: TernaryConfig, fan_in: int, fan_out: int, normed: bool = False):
        super().__init__(fan_in, fan_out, bias=False)
        self.group = cfg.group_size
        self.normed = normed

    def ternary_weight(self) -> Tensor:
        w = self.weight.float()
        groups = w.reshape(-1, self.group)
        scale = groups.abs().mean(-1, keepdim=True).clamp(min=1e-8)
        q = (groups / scale).round().clamp(-1, 1)
        return w + ((q * scale).reshape(w.shape) - w)

    def forward(self, x: Tensor) -> Tensor:
        if self.normed:
            x = rms_norm(x)
        return F.linear(x, self.ternary_weight().to(x.dtype))


def simulated(w: Tensor, fp_storage: str) -> Tensor:
    """The record's QAT straight-through value w + (stored(w) − w) (w itself when off)."""
    if fp_storage == "fp8":
        return w + (w.to(torch.float8_e4m3fn).to(w.dtype) - w)
    if fp_storage == "fp4":
        scale = w.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / 7.0
        return w + (torch.clamp(torch.round(w / scale), -7.0, 7.0) * scale - w)
    return w


class StoredLinear(nn.Linear):
    """A float projection through the record's fp8/fp4 straight-through estimator."""

    def __init__(self, fan_in: int, fan_out: int, fp_storage: str):
        super().__init__(fan_in, fan_out, bias=False)
        self.fp_storage = fp_storage

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, simulated(self.weight, self.fp_storage).to(x.dtype))


def yarn_rotary(cfg: TernaryConfig, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos/sin [1,T,1,hd/2] at positions 0..T-1; YaRN divides the inverse frequency of
    pair i by 1 + ramp(i)·(yarn_max_len/train_len − 1), ramp rising from 0 at a quarter
    of the head to 1 at its end (the record's table, its operations in its order)."""
    hd = cfg.head_dim
    idx = torch.arange(0, hd, 2, dtype=torch.float32, device=device)
    inv_freq = 1.0 / (cfg.rope_base ** (idx / hd))
    if cfg.rope_type == "yarn":
        scale = cfg.rope_train_seq_len / cfg.yarn_max_len
        ramp = torch.clamp((idx / hd - 0.25) / 0.75, 0.0, 1.0)
        inv_freq = inv_freq / (ramp * (1.0 / scale - 1.0) + 1.0)
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]


class Attention(nn.Module):
    """Fused ternary qkv, q/k RMS-norm, RoPE/YaRN, q gain, causal GQA, normed ternary out."""

    def __init__(self, cfg: TernaryConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        self.c_qkv = role(TernaryLinear(cfg, d, cfg.q_rows), MATRIX)
        self.proj = role(TernaryLinear(cfg, d, d, normed=True), MATRIX)
        self.q_gain = role(nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init)), CONTROL)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], ctx: AttentionContext) -> Tensor:
        cfg = self.cfg
        b, t, d = x.shape
        q, k, v = self.c_qkv(x).split([d, cfg.kv_dim, cfg.kv_dim], dim=-1)
        q = q.reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = k.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = v.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        y = qk_attention(q, k, v, rope, self.q_gain, ctx)
        return self.proj(y.reshape(b, t, d))


class MLP(nn.Module):
    """Ternary MLP: fc (or fused gate+up for SwiGLU), activation, normed ternary proj."""

    def __init__(self, cfg: TernaryConfig):
        super().__init__()
        d, h = cfg.model_dim, cfg.mlp_hidden
        self.activation = cfg.activation
        if cfg.activation == "swiglu":
            self.gate_up = role(TernaryLinear(cfg, d, 2 * h), MATRIX)
        else:
            self.fc = role(TernaryLinear(cfg, d, h), MATRIX)
        self.proj = role(TernaryLinear(cfg, h, d, normed=True), MATRIX)

    def forward(self, x: Tensor) -> Tensor:
        if self.activation == "swiglu":
            gate, up = self.gate_up(x).chunk(2, dim=-1)
            return self.proj(F.silu(gate) * up)
        h = self.fc(x)
        if self.activation == "relu":
            return self.proj(torch.relu(h))
        if self.activation == "leaky_relu":
            return self.proj(F.leaky_relu(h, negative_slope=0.01))
        return self.proj(torch.relu(h).square())


class Block(nn.Module):
    def __init__(self, cfg: TernaryConfig):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)

    def forward(self, x: Tensor, x0: Tensor, rope, ctx: AttentionContext) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x), rope, ctx)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x))


def softcap(logits: Tensor, cap: float, kind: str) -> Tensor:
    """tanh softcap, or the record's poly5: cap·clip(u − u³/3 + u⁵/15, ±1), u = clip(z/cap, ±2)."""
    if kind == "tanh":
        return cap * torch.tanh(logits / cap)
    u = torch.clamp(logits / cap, -2.0, 2.0)
    u2 = u * u
    return cap * torch.clamp(u * (1.0 - u2 / 3.0 + u2 * u2 / 15.0), -1.0, 1.0)


class TernaryGPT(nn.Module):
    """Factored tied embedding → ternary U-Net → tied head + vocab bias → softcap."""

    config_class = TernaryConfig

    def __init__(self, config: TernaryConfig):
        super().__init__()
        cfg = self.config = config
        d, e = cfg.model_dim, cfg.embed_dim
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, e), EMBEDDING)
        if e != d:
            self.embed_proj = role(StoredLinear(e, d, cfg.fp_storage), MATRIX)
            self.embed_proj_rev = role(StoredLinear(d, e, cfg.fp_storage), MATRIX)
        self.skip_weights = role(nn.Parameter(torch.ones(cfg.num_skips, d)), CONTROL)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.vocab_bias = role(nn.Parameter(torch.zeros(cfg.vocab_size)), CONTROL)
        self._roles = roles_of(self)

    def parameter_roles(self) -> dict[str, Role]:
        return roles_of(self, self._roles)

    @property
    def head_weight(self) -> Tensor:
        return self.tok_emb.weight

    def forward_hidden(
        self, ids: Tensor, rows: Tensor | None = None, attention: AttentionContext | None = None
    ) -> Tensor:
        """[B,T] ids -> [B,T,d_embed] hidden after the final norm and the down projection;
        with `rows` ([B,R]) only those positions (computed in full, then taken)."""
        cfg = self.config
        ctx = attention if attention is not None else AttentionContext()
        x = F.embedding(ids, simulated(self.tok_emb.weight, cfg.fp_storage)).float()
        if cfg.embed_dim != cfg.model_dim:
            x = self.embed_proj(x)
        x = rms_norm(x)
        x0 = x
        rope = yarn_rotary(cfg, ids.size(1), ids.device)
        skips: list[Tensor] = []
        for i in range(cfg.num_encoder):
            for _ in range(cfg.depth_recurrence):
                x = self.blocks[i](x, x0, rope, ctx)
            skips.append(x)
        for i in range(cfg.num_layers - cfg.num_encoder):
            if skips:
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            for _ in range(cfg.depth_recurrence):
                x = self.blocks[cfg.num_encoder + i](x, x0, rope, ctx)
        x = rms_norm(x)
        if cfg.embed_dim != cfg.model_dim:
            x = self.embed_proj_rev(x)
        return x if rows is None else take_rows(x, rows)

    def logits(self, hidden: Tensor) -> Tensor:
        cfg = self.config
        raw = F.linear(hidden, self.head_weight.to(hidden.dtype))
        return softcap(raw + self.vocab_bias.to(hidden.dtype), cfg.logit_softcap, cfg.softcap_type)

    def z_loss(self, hidden: Tensor) -> Tensor:
        """1e-4·logsumexp(logits)² per position: what the record's mean-reduced loss (its
        plain eval) adds to the cross-entropy; never part of golf's val_bpb."""
        return 1e-4 * torch.logsumexp(self.logits(hidden).float(), dim=-1).square()

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        logits = self.logits(self.forward_hidden(ids))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


UNSUPPORTED = {
    "bigram_hash": "the hashed bigram embedding",
    "smear": "the smear module",
    "refiner": "the causal conv refiner",
    "diff_attn": "differential attention",
}


def _on(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true")


def _fp_storage(v: Any) -> str:
    """The record's FP_STORAGE as its Hyperparameters resolve it: True (FP8), "fp4", False."""
    text = str(v).strip().lower()
    if text in ("true", "fp8", "1"):
        return "fp8"
    if text == "fp4":
        return "fp4"
    if text in ("false", "0", "none"):
        return "none"
    raise ConfigError(f"fp_storage {v!r:.40} is neither FP8, FP4 nor off")


def config_from_record(
    hparams: dict[str, Any], shapes: dict[str, tuple[int, ...]]
) -> TernaryConfig:
    """The config of the ternary record: sizes from the tensors, the rest from its
    hyperparameters; variants of its code that this module does not hold are refused."""

    def need(key: str) -> Any:
        if key not in hparams:
            raise ConfigError(f"hyperparameter {key} is needed for {ARCH} and was not found")
        return hparams[key]

    for key, what in UNSUPPORTED.items():
        if _on(hparams.get(key, False)):
            raise ConfigError(f"{key}: {what} is not supported")
    for key in ("attn_proj_type", "logit_head_type"):
        if str(hparams.get(key, "standard")) != "standard":
            raise ConfigError(f"{key}={hparams[key]!r:.40}: only the standard projection")
    if int(hparams.get("mlp_groups", 0) or 0) > 0:
        raise ConfigError("mlp_groups: grouped ternary MLPs are not supported")
    tie = int(need("tie_embeddings"))
    if tie != 1 or "lm_head.weight" in shapes:
        raise ConfigError(f"tie_embeddings={tie}: only the tied head (1) is supported")
    for name in shapes:
        if name.startswith(("tversky", "lm_head_correction", "bigram_emb", "refiner")):
            raise ConfigError(f"tensor {name}: a variant this family does not hold")
    vocab, e = shapes["tok_emb.weight"]
    d = shapes["blocks.0.attn.c_qkv.weight"][1]
    heads = shapes["blocks.0.attn.q_gain"][0]
    qkv_rows = shapes["blocks.0.attn.c_qkv.weight"][0]
    activation = str(need("activation_type"))
    if activation == "swiglu":
        hidden = shapes["blocks.0.mlp.gate_up.weight"][0] // 2
    else:
        hidden = shapes["blocks.0.mlp.fc.weight"][0]
    n = sum(1 for k in shapes if k.endswith(".attn.c_qkv.weight"))
    recur = int(hparams.get("eval_depth_recurrence", 0) or 0)
    if recur <= 0:
        recur = int(hparams.get("training_depth_recurrence", 1) or 0)
    doc = {
        "vocab_size": vocab,
        "num_layers": n,
        "model_dim": d,
        "embedding_dim": 0 if e == d else e,
        "num_heads": heads,
        "num_kv_heads": (qkv_rows - d) // 2 // (d // heads),
        "mlp_hidden": hidden,
        "activation": activation,
        "group_size": int(need("bitnet_group_size")),
        "fp_storage": _fp_storage(need("fp_storage")),
        "logit_softcap": float(need("logit_softcap")),
        "softcap_type": str(need("softcap_type")),
        "rope_base": float(need("rope_base")),
        "rope_type": str(need("rope_type")),
        "yarn_max_len": int(need("yarn_max_len")),
        "rope_train_seq_len": int(need("train_seq_len")),
        "qk_gain_init": float(need("qk_gain_init")),
        "depth_recurrence": max(1, recur),
    }
    return TernaryConfig.parse(doc)
