"""The SP1024 GPT of the record 2026-03-31 (parallel residuals + mini depth recurrence).

The 03-2x stack (BigramHash + SmearGate input, MLP ×3 with LeakyReLU(slope)² — the slope
a hyperparameter, 0.5 in the record's run —, partial RoPE NTK-scaled past 1024 positions,
per-head q gain, XSA, value embeddings on chosen *virtual* layers, gated U-Net skips, tied
softcapped head) with five additions, each a fact of its code:

* mini depth recurrence: virtual layers `[0 .. r_max, *recur_layers, r_max+1 .. n-1]`;
  every virtual layer has its own block of control tensors (`blocks.{v}`: scales, mix,
  q gain) while the matrices are the physical layer's; the record's eval runs with the
  recurrence on (it switches on mid-training), as here;
* untied repeat MLPs: the virtual layers `enc .. enc + len(recur_layers) − 1` (enc = the
  encoder's length; these are the repeats when the repeated block ends the encoder, as in
  the record) take `repeat_mlp.{k}.fc` / `.proj` in place of the physical MLP's where
  they exist (mode full: both, down: proj);
* layer-0 attention off: virtual layer 0 runs only its MLP (its attention matrices are
  not in the artifact);
* two residual lanes from the first layer whose physical (or virtual) index reaches
  `parallel_start`: attention reads lane 0, the MLP lane 1 (both with the x0 mix), and
  each sublayer writes into both, `lane_j ← r·lane_j + post_j·out` with learned
  `parallel_resid_lambdas[p]` and `parallel_post_lambdas[p]`; skips land on both lanes,
  a sequential layer after the split runs on the single stream (which then feeds nothing:
  the record's behaviour, kept), the head reads the lanes' mean;
* canon taps (`canon_a`, `canon_c`, on chosen physical layers): the attention and MLP
  inputs become `x + Σ_k w_k · x shifted by k` over the current and three previous tokens.

Parameter names equal the record's state dict after it unbanks (`blocks.{p}.attn.c_q`,
…), so an imported artifact loads strictly.
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
    SmearGate,
    bigram_hash,
    qk_attention,
    rms_norm,
    rotary,
    take_rows,
)
from golf.models.roles import Role, role, roles_of
from golf.spec.errors import ConfigError, parse_document

MATRIX, EMBEDDING, CONTROL = Role.MATRIX, Role.EMBEDDING, Role.CONTROL

ARCH = "parres-sp1024"
Rope = tuple[Tensor, Tensor]
Untie = Literal["none", "down", "full"]


class NoAdapterSites(ConfigError):
    """A LoRA adapter was handed to this family, whose forward has no sites for one."""


class ParresConfig(BaseModel):
    """Every knob that fixes the model's tensors and forward math (bounded: it arrives in
    untrusted artifact metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(1024, ge=2, le=1 << 18)
    num_layers: int = Field(11, ge=1, le=256)
    model_dim: int = Field(512, ge=2, le=16384)
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_mult: float = Field(3.0, gt=0, le=64)
    negative_slope: float = Field(0.5, ge=-1e3, le=1e3)
    tie_embeddings: bool = True
    tied_embed_init_std: float = Field(0.005, ge=0, le=1)
    logit_softcap: float = Field(30.0, gt=0, le=1e4)
    rope_base: float = Field(10000.0, gt=0, le=1e9)
    rope_dims: int = Field(16, ge=0, le=16384)
    rope_train_seq_len: int = Field(1024, ge=1, le=1 << 20)  # the record's Rotary literal
    qk_gain_init: float = Field(1.5, ge=-1e3, le=1e3)
    ln_scale: bool = True
    xsa_last_n: int = Field(11, ge=0, le=1024)  # virtual layers, from the top
    bigram_vocab_size: int = Field(2816, ge=0, le=1 << 20)  # 0: no BigramHash
    bigram_dim: int = Field(112, ge=1, le=16384)
    ve_dim: int = Field(128, ge=0, le=16384)
    ve_layers: tuple[int, ...] = (9, 10)  # virtual indices; () disables
    recur_layers: tuple[int, ...] = (4, 5)
    repeat_mlp: tuple[Untie, ...] = ("full", "full")  # one per recur layer
    attn_off_layer0: bool = True
    parallel: bool = True
    parallel_start: int = Field(7, ge=0, le=1024)
    parallel_physical: bool = True
    canon_layers: tuple[int, ...] = ()  # physical indices; () means no canon tensors

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
    def num_encoder(self) -> int:
        return self.num_virtual_layers // 2

    @property
    def num_skips(self) -> int:
        nv = len(self.virtual_layers)
        return min(nv // 2, nv - nv // 2)

    @model_validator(mode="after")
    def _check(self) -> ParresConfig:
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
        if self.bigram_vocab_size == 1:
            raise ValueError("bigram_vocab_size must be 0 (off) or at least 2")
        n, nv = self.num_layers, len(self.virtual_layers)
        for name, layers, bound in (
            ("recur_layers", self.recur_layers, n),
            ("canon_layers", self.canon_layers, n),
            ("ve_layers", self.ve_layers, nv),
        ):
            if any(not 0 <= i < bound for i in layers) or len(set(layers)) < len(layers):
                raise ValueError(f"{name} {list(layers)} must be distinct layers of {bound}")
        if list(self.recur_layers) != sorted(self.recur_layers):
            raise ValueError(f"recur_layers {list(self.recur_layers)} must be increasing")
        if len(self.repeat_mlp) != len(self.recur_layers):
            raise ValueError(
                f"repeat_mlp names {len(self.repeat_mlp)} modes for "
                f"{len(self.recur_layers)} recur layers"
            )
        if self.ve_layers and not self.ve_dim:
            raise ValueError("ve_layers need ve_dim > 0")
        if self.attn_off_layer0 and 0 in self.recur_layers:
            raise ValueError("layer 0 without attention matrices cannot be repeated")
        return self

    def replace(self, **changes: Any) -> ParresConfig:
        return ParresConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> ParresConfig:
        return parse_document(cls, doc, "model config")


def canon(x: Tensor, w: Tensor) -> Tensor:
    """x + Σ_{k<4} w[k] · (x delayed by k tokens, zeros before the start)."""
    w = w.to(x.dtype)
    t = x.size(1)
    y = x * w[0]
    for k in (1, 2, 3):
        y = y + F.pad(x, (0, 0, k, 0))[:, :t] * w[k]
    return x + y


class Attention(nn.Module):
    """GQA attention, value embedding added to v, q/k RMS-norm, partial RoPE, q gain,
    XSA. A virtual layer's module holds its q gain; the matrices are those of `w`, the
    physical layer's module (absent on layer 0 when its attention is off)."""

    def __init__(self, cfg: ParresConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        self.q_gain = role(nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init)), CONTROL)
        if layer < cfg.num_layers and not (layer == 0 and cfg.attn_off_layer0):
            self.c_q = role(CastedLinear(d, d, bias=False), MATRIX)
            self.c_k = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
            self.c_v = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
            self.proj = role(CastedLinear(d, d, bias=False), MATRIX)
        self.use_xsa = layer >= len(cfg.virtual_layers) - cfg.xsa_last_n

    def forward(self, x: Tensor, w: Attention, rope: Rope, ve, ctx: AttentionContext) -> Tensor:
        cfg = self.cfg
        b, t, d = x.shape
        q = w.c_q(x).reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = w.c_k(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = w.c_v(x)
        if ve is not None:
            v = v + ve
        v = v.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        y = qk_attention(q, k, v, rope, self.q_gain, ctx, self.use_xsa)
        return w.proj(y.reshape(b, t, d))


class MLPWeights(nn.Module):
    """A physical MLP's matrices, or a repeat's untied ones (mode full: fc and proj,
    down: proj only, none: neither)."""

    def __init__(self, cfg: ParresConfig, mode: Untie = "full"):
        super().__init__()
        d, hidden = cfg.model_dim, cfg.mlp_hidden
        if mode == "full":
            self.fc = role(CastedLinear(d, hidden, bias=False), MATRIX)
        if mode in ("full", "down"):
            self.proj = role(CastedLinear(hidden, d, bias=False), MATRIX)


def mlp(x: Tensor, fc: CastedLinear, proj: CastedLinear, slope: float) -> Tensor:
    """proj(LeakyReLU(fc(x), slope)²)."""
    return proj(F.leaky_relu(fc(x), negative_slope=slope).square())


class Block(nn.Module):
    """One virtual layer's control tensors (and, for a physical layer, its matrices)."""

    def __init__(self, cfg: ParresConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, layer)
        if layer < cfg.num_layers:
            self.mlp = MLPWeights(cfg)
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)
        self.ln = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0
        self.attn_on = not (layer == 0 and cfg.attn_off_layer0)

    def mixed(self, x: Tensor, x0: Tensor) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        return mix[0] * x + mix[1] * x0


class ParresGPT(nn.Module):
    """BigramHash + token embedding, smeared → U-Net over virtual layers (one stream, then
    two lambda-weighted lanes) → final RMSNorm of the lanes' mean → tied softcapped head."""

    config_class = ParresConfig

    def __init__(self, config: ParresConfig):
        super().__init__()
        cfg = self.config = config
        d, n = cfg.model_dim, cfg.num_layers
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, d), EMBEDDING)
        if cfg.bigram_vocab_size:
            self.bigram = ScaledEmbedding(cfg.bigram_vocab_size, cfg.bigram_dim, d, 0.05)
        self.smear = SmearGate(d)
        self.skip_weights = role(nn.Parameter(torch.ones(cfg.num_skips, d)), CONTROL)
        self.skip_gates = role(nn.Parameter(torch.zeros(cfg.num_skips, d)), CONTROL)
        if cfg.canon_layers:
            self.canon_a = role(nn.Parameter(torch.zeros(n, 4, d)), CONTROL)
            self.canon_c = role(nn.Parameter(torch.zeros(n, 4, d)), CONTROL)
        if cfg.parallel:
            self.parallel_post_lambdas = role(nn.Parameter(torch.ones(n, 2, 2)), CONTROL)
            resid = torch.full((n, 2), 1.1**0.5)
            self.parallel_resid_lambdas = role(nn.Parameter(resid), CONTROL)
        self.repeat_mlp = nn.ModuleList(MLPWeights(cfg, mode) for mode in cfg.repeat_mlp)
        nv = len(cfg.virtual_layers)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(nv))
        if cfg.ve_layers:
            self.ve_shared = ScaledEmbedding(cfg.vocab_size, cfg.ve_dim, cfg.kv_dim, 0.1)
            scales = (nn.Parameter(torch.ones(1)) for _ in cfg.ve_layers)
            self.ve_layer_scales = role(nn.ParameterList(scales), CONTROL)
        if not cfg.tie_embeddings:
            self.lm_head = role(CastedLinear(d, cfg.vocab_size, bias=False), EMBEDDING)
        if not self.tok_emb.weight.is_meta and cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self._roles = roles_of(self)

    def parameter_roles(self) -> dict[str, Role]:
        return roles_of(self, self._roles)

    @property
    def head_weight(self) -> Tensor:
        return self.tok_emb.weight if self.config.tie_embeddings else self.lm_head.weight

    def _mlp_weights(self, v: int, p: int) -> tuple[CastedLinear, CastedLinear]:
        """fc, proj of virtual layer v (physical p): a repeat's own where it has them."""
        own = self.blocks[p].mlp
        fc, proj = own.fc, own.proj
        k = v - self.config.num_encoder
        if 0 <= k < len(self.repeat_mlp):
            fc = getattr(self.repeat_mlp[k], "fc", fc)
            proj = getattr(self.repeat_mlp[k], "proj", proj)
        return fc, proj

    def _skip(self, x: Tensor, j: int, skip: Tensor) -> Tensor:
        g = torch.sigmoid(self.skip_gates[j].to(x.dtype))
        return torch.lerp(self.skip_weights[j].to(x.dtype) * skip, x, g)

    def forward_hidden(
        self, ids: Tensor, rows: Tensor | None = None, attention: AttentionContext | None = None
    ) -> Tensor:
        """[B,T] ids -> [B,T,d] hidden after the final norm; with `rows` ([B,R]) only those
        positions (computed in full, then taken)."""
        cfg = self.config
        ctx = attention if attention is not None else AttentionContext()
        if ctx.adapter is not None:
            raise NoAdapterSites(f"{ARCH} has no LoRA adapter sites: ttt-lora cannot adapt it")
        x = self.tok_emb(ids)
        if cfg.bigram_vocab_size:
            x = x + self.bigram(bigram_hash(ids, cfg.bigram_vocab_size))
        x0 = x = self.smear(rms_norm(x))
        rope = rotary(cfg, ids.size(1), ids.device)
        ve_base = self.ve_shared(ids) if cfg.ve_layers else None
        slope = cfg.negative_slope
        lanes: tuple[Tensor, Tensor] | None = None
        skips: list[Tensor | tuple[Tensor, Tensor]] = []
        for v, p in enumerate(cfg.virtual_layers):
            block, w = self.blocks[v], self.blocks[p]
            fc, proj = self._mlp_weights(v, p)
            ca = self.canon_a[p] if p in cfg.canon_layers else None
            cc = self.canon_c[p] if p in cfg.canon_layers else None
            ve = None
            if ve_base is not None and v in cfg.ve_layers:
                ve = ve_base * self.ve_layer_scales[cfg.ve_layers.index(v)].to(ve_base.dtype)
            j = v - cfg.num_encoder  # decoder index; < 0 in the encoder
            if cfg.parallel and (p if cfg.parallel_physical else v) >= cfg.parallel_start:
                lane0, lane1 = lanes if lanes is not None else (x, x)
                if j >= 0 and skips:
                    s = skips.pop()
                    s0, s1 = s if isinstance(s, tuple) else (s, s)
                    lane0, lane1 = self._skip(lane0, j, s0), self._skip(lane1, j, s1)
                resid, post = self.parallel_resid_lambdas[p], self.parallel_post_lambdas[p]
                if block.attn_on:
                    h = rms_norm(block.mixed(lane0, x0)) * block.ln
                    a = block.attn(h if ca is None else canon(h, ca), w.attn, rope, ve, ctx)
                    a = block.attn_scale.to(a.dtype) * a
                    r, o = resid[0].to(x.dtype), post[0].to(x.dtype)
                    lane0, lane1 = r * lane0 + o[0] * a, r * lane1 + o[1] * a
                h = rms_norm(block.mixed(lane1, x0)) * block.ln
                m = block.mlp_scale.to(x.dtype) * mlp(
                    h if cc is None else canon(h, cc), fc, proj, slope
                )
                r, o = resid[1].to(x.dtype), post[1].to(x.dtype)
                lanes = (r * lane0 + o[0] * m, r * lane1 + o[1] * m)
                if j < 0:
                    skips.append(lanes)
                continue
            if j >= 0 and skips:
                s = skips.pop()
                x = self._skip(x, j, s[1] if isinstance(s, tuple) else s)
            x = block.mixed(x, x0)
            if block.attn_on:
                h = rms_norm(x) * block.ln
                a = block.attn(h if ca is None else canon(h, ca), w.attn, rope, ve, ctx)
                x = x + block.attn_scale.to(x.dtype) * a
            h = rms_norm(x) * block.ln
            x = x + block.mlp_scale.to(x.dtype) * mlp(
                h if cc is None else canon(h, cc), fc, proj, slope
            )
            if j < 0:
                skips.append(x)
        x = rms_norm((lanes[0] + lanes[1]) * 0.5 if lanes is not None else x)
        return x if rows is None else take_rows(x, rows)

    def logits(self, hidden: Tensor, adapter: object = None) -> Tensor:
        if adapter is not None:
            raise NoAdapterSites(f"{ARCH} has no LoRA adapter sites: ttt-lora cannot adapt it")
        c = self.config.logit_softcap
        return c * torch.tanh(F.linear(hidden, self.head_weight.to(hidden.dtype)) / c)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        logits = self.logits(self.forward_hidden(ids))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


# ------------------------------------------------------------------ from a record folder


def _layers(v: Any) -> tuple[int, ...]:
    if isinstance(v, str):
        return tuple(int(x) for x in v.split(",") if x.strip())
    if isinstance(v, int):
        return (v,)
    return tuple(int(x) for x in v)


def _count(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    n = 0
    while pattern.format(n) in shapes:
        n += 1
    return n


def config_from_record(hparams: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> ParresConfig:
    """The config of the 03-31 record: sizes and which variants exist from the tensors
    (lanes, untied repeats, canon, layer-0 attention off), the layer lists and the rest
    from its hyperparameters (`recur_layers_str`, `canon_ac_layers`, …; its README's run
    sets RECUR_LAYERS=4,5, which the code does not default to) and code traits
    (`rope_train_seq_len`, the Rotary literal)."""

    def need(key: str) -> Any:
        if key not in hparams:
            raise ConfigError(f"hyperparameter {key} is needed for {ARCH} and was not found")
        return hparams[key]

    vocab, d = shapes["tok_emb.weight"]
    heads = shapes["blocks.0.attn.q_gain"][0]
    n = _count(shapes, "blocks.{}.mlp.fc.weight")
    virtual = _count(shapes, "blocks.{}.attn_scale")
    kv_key = next((k for k in shapes if k.endswith(".attn.c_k.weight")), None)
    if kv_key is None:
        raise KeyError("blocks.1.attn.c_k.weight")
    recur = _layers(hparams.get("recur_layers", hparams.get("recur_layers_str", "")))
    if n + len(recur) != virtual:
        raise ConfigError(
            f"tensors hold {virtual} virtual layers over {n} physical ones but recur_layers "
            f"is {list(recur)}: pass --set RECUR_LAYERS=… as the run set it"
        )
    modes = []
    for k in range(len(recur)):
        fc, proj = (f"repeat_mlp.{k}.{m}.weight" in shapes for m in ("fc", "proj"))
        modes.append("full" if fc else "down" if proj else "none")
    canon_layers = _layers(hparams.get("canon_ac_layers", "")) if "canon_a" in shapes else ()
    if "canon_a" in shapes and not canon_layers:
        raise ConfigError("tensor canon_a: pass --set CANON_AC_LAYERS=… as the run set it")
    bigram = shapes.get("bigram.embed.weight", (0, 112))
    ve = "ve_shared.embed.weight" in shapes
    doc = {
        "vocab_size": vocab,
        "num_layers": n,
        "model_dim": d,
        "num_heads": heads,
        "num_kv_heads": shapes[kv_key][0] // (d // heads),
        "mlp_mult": shapes["blocks.0.mlp.fc.weight"][0] / d,
        "negative_slope": float(need("negative_slope")),
        "tie_embeddings": "lm_head.weight" not in shapes,
        "logit_softcap": float(need("logit_softcap")),
        "rope_base": float(need("rope_base")),
        "rope_dims": int(need("rope_dims")),
        "rope_train_seq_len": int(need("rope_train_seq_len")),
        "qk_gain_init": float(hparams.get("qk_gain_init", 1.5)),
        "ln_scale": bool(need("ln_scale")),
        "xsa_last_n": min(int(need("xsa_last_n")), virtual),
        "bigram_vocab_size": bigram[0],
        "bigram_dim": bigram[1],
        "ve_dim": shapes["ve_shared.embed.weight"][1] if ve else 0,
        "ve_layers": _layers(need("ve_layers")) if ve else (),
        "recur_layers": recur,
        "repeat_mlp": tuple(modes),
        "attn_off_layer0": "blocks.0.attn.c_q.weight" not in shapes,
        "parallel": "parallel_post_lambdas" in shapes,
        "parallel_start": int(hparams.get("parallel_start_layer", 7)),
        "parallel_physical": bool(hparams.get("parallel_start_layer_is_physical", True)),
        "canon_layers": canon_layers,
    }
    return ParresConfig.parse(doc)
