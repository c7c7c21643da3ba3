"""The SP1024 GPT of the Parameter Golf records, one readable file.

Names and shapes of parameters equal the reference `train_gpt.py` state dict (per-block
`blocks.{i}.attn.c_q/c_k/c_v/proj`, `blocks.{i}.mlp.fc/proj`, control tensors beside
them), so a reference artifact loads with `load_state_dict(strict=True)`, and the
forward is the reference forward: same weights, same numbers.

With depth recurrence the reference keeps one `blocks.{i}` per *virtual* layer for the
control tensors (scales, mixes, q_gain, gates) but matrices only for the physical
layers; a repeated layer borrows the matrices of the physical block it repeats.

Every parameter is tagged with its Role where it is created (`role(..., Role.X)`):
the artifact's quantization and the trainer's optimizer groups read these tags, and
`GPT.parameter_roles()` refuses a model holding an untagged one.
"""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.models.attention import Adapter, AttentionContext, causal_attention, plus_delta
from golf.models.roles import Role, role, roles_of
from golf.spec.config import ModelConfig

MATRIX, EMBEDDING, CONTROL = Role.MATRIX, Role.EMBEDDING, Role.CONTROL


class CastedLinear(nn.Linear):
    """Linear whose weight follows the activation dtype: fp32 master weights, bf16 math."""

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary(
    cfg: ModelConfig, seq_len: int, device: torch.device, ntk: bool = True
) -> tuple[Tensor, Tensor]:
    """cos/sin [1,T,1,rd/2]; with `ntk` an NTK-scaled base beyond the training length, as
    the reference (every family's config names rope_dims, head_dim, rope_base and
    rope_train_seq_len alike)."""
    rd = cfg.rope_dims or cfg.head_dim
    base = cfg.rope_base
    if ntk and seq_len > cfg.rope_train_seq_len:
        base = base * (seq_len / cfg.rope_train_seq_len) ** (rd / (rd - 2))
    inv_freq = 1.0 / base ** (torch.arange(0, rd, 2, dtype=torch.float32, device=device) / rd)
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first 2*cos.size(-1) dims of each head (half-split pairing); pass the rest."""
    rd = 2 * cos.size(-1)
    x1, x2, rest = x[..., : rd // 2], x[..., rd // 2 : rd], x[..., rd:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin, rest), dim=-1)


def take_rows(x: Tensor, rows: Tensor) -> Tensor:
    """x [B, T, ...] at positions rows [B, R] -> [B, R, ...]."""
    index = rows.reshape(*rows.shape, *([1] * (x.dim() - 2)))
    return x.gather(1, index.expand(-1, -1, *x.shape[2:]))


def exclusive(y: Tensor, v: Tensor) -> Tensor:
    """XSA: remove from each head's output its component along the token's own value."""
    b, t, h, d = y.shape
    hkv = v.size(2)
    y = y.reshape(b, t, hkv, h // hkv, d)
    vn = F.normalize(v, dim=-1).unsqueeze(3)
    return (y - (y * vn).sum(-1, keepdim=True) * vn).reshape(b, t, h, d)


def qk_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rope: tuple[Tensor, Tensor],
    q_gain: Tensor,
    ctx: AttentionContext,
    xsa: bool = False,
) -> Tensor:
    """The families' shared attention core on [B, T, H, hd] heads: RMS-normed q and k,
    rotary on both, a per-head gain on q, causal (or document-bounded: `ctx`) attention,
    and with `xsa` each output's component along its own value removed."""
    q, k = rms_norm(q), rms_norm(k)
    q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
    q = q * q_gain.to(q.dtype)[None, None, :, None]
    y = causal_attention(q, k, v, None, ctx)
    return exclusive(y, v) if xsa else y


class Attention(nn.Module):
    """GQA attention with QK RMS-norm, partial RoPE, per-head q gain, optional XSA,
    value residual, value embeddings and a per-head output gate."""

    def __init__(self, cfg: ModelConfig, layer: int, weights: bool):
        super().__init__()
        self.cfg = cfg
        d = cfg.model_dim
        self.q_gain = role(nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init)), CONTROL)
        if cfg.value_residual == "gate" and layer > 0:
            self.vrl_gate = role(nn.Parameter(torch.tensor(-1.5)), CONTROL)
        if cfg.value_residual == "alpha":
            self.vrl_alpha = role(nn.Parameter(torch.zeros(1)), CONTROL)
        if weights:  # only physical layers own matrices
            self.c_q = role(CastedLinear(d, d, bias=False), MATRIX)
            self.c_k = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
            self.c_v = role(CastedLinear(d, cfg.kv_dim, bias=False), MATRIX)
            self.proj = role(CastedLinear(d, d, bias=False), MATRIX)
            self.proj._zero_init = True
        if cfg.attn_gate:
            self.attn_gate = role(CastedLinear(d, cfg.num_heads, bias=True), CONTROL)
            nn.init.zeros_(self.attn_gate.weight)
            nn.init.constant_(self.attn_gate.bias, 4.0)
        self.use_xsa = layer >= cfg.num_virtual_layers - cfg.xsa_last_n
        self.layer = layer

    def forward(
        self,
        x: Tensor,
        w: "Attention",
        rope: tuple[Tensor, Tensor],
        ve: Tensor | None,
        v0: Tensor | None,
        rows: Tensor | None,
        ctx: AttentionContext,
    ) -> tuple[Tensor, Tensor]:
        """`w` holds the matrices; returns (output, this layer's value for VRL).

        With `rows` ([B, R] positions) K/V are computed everywhere but queries, output and
        gate only at those rows: the output is [B, R, d] (the value stays [B, T, ...]).
        """
        cfg = self.cfg
        b, t, d = x.shape
        hd = cfg.head_dim
        xq = x if rows is None else take_rows(x, rows)
        lora = ctx.adapter
        q, k, v = w.c_q(xq), w.c_k(x), w.c_v(x)
        if lora is not None:
            q, k, v = (
                _adapt(lora, "q", self.layer, xq, q),
                _adapt(lora, "k", self.layer, x, k),
                _adapt(lora, "v", self.layer, x, v),
            )
        q = q.reshape(b, xq.size(1), cfg.num_heads, hd)
        k = k.reshape(b, t, cfg.num_kv_heads, hd)
        v_out = v  # "gate" keeps the value before VE
        if ve is not None:
            v = v + ve
        if cfg.value_residual == "alpha":
            v_out = v  # "alpha" keeps it after VE
            if v0 is not None:
                v = v + torch.sigmoid(self.vrl_alpha.to(v.dtype)) * v0
        elif cfg.value_residual == "gate" and v0 is not None:
            g = torch.sigmoid(self.vrl_gate.to(v.dtype))
            v = (1 - g) * v + g * v0
        v = v.reshape(b, t, cfg.num_kv_heads, hd)
        q, k = rms_norm(q), rms_norm(k)
        if rows is None:
            q = apply_rotary(q, *rope)
        else:  # each query row at its own position
            q = apply_rotary(q, *(take_rows(r.expand(b, -1, -1, -1), rows) for r in rope))
        k = apply_rotary(k, *rope)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = causal_attention(q, k, v, rows, ctx)
        if self.use_xsa:
            y = exclusive(y, v if rows is None else take_rows(v, rows))
        if cfg.attn_gate:
            y = y * torch.sigmoid(self.attn_gate(xq)).unsqueeze(-1)
        out = w.proj(y.reshape(b, xq.size(1), d))
        if lora is not None:
            out = _adapt(lora, "o", self.layer, xq, out)
        return out, v_out


def _adapt(adapter: Adapter, site: str, layer: int, x: Tensor, y: Tensor) -> Tensor:
    """y plus the adapter's update of `site` from input x (y unchanged without one)."""
    return plus_delta(y, adapter.delta(site, layer, x))


class MLP(nn.Module):
    """LeakyReLU(0.5)^2 MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = role(CastedLinear(cfg.model_dim, cfg.mlp_hidden, bias=False), MATRIX)
        self.proj = role(CastedLinear(cfg.mlp_hidden, cfg.model_dim, bias=False), MATRIX)
        self.proj._zero_init = True

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())


class Block(nn.Module):
    """Pre-norm block with an x0 residual mix and per-channel branch scales."""

    def __init__(self, cfg: ModelConfig, layer: int, mlp_class: type[MLP] = MLP):
        super().__init__()
        d = cfg.model_dim
        weights = layer < cfg.num_layers
        self.attn_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.mlp_scale = role(nn.Parameter(torch.ones(d)), CONTROL)
        self.resid_mix = role(nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))), CONTROL)
        self.attn = Attention(cfg, layer, weights)
        if weights:
            self.mlp = mlp_class(cfg)
        if cfg.dtg:
            self.dtg_gate = role(CastedLinear(d, 1, bias=True), CONTROL)
            nn.init.zeros_(self.dtg_gate.weight)
            nn.init.constant_(self.dtg_gate.bias, 2.0)
        self.dtg = cfg.dtg
        self.ln_scale = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0
        self.layer = layer

    def forward(
        self,
        x: Tensor,
        x0: Tensor,
        w: "Block",
        rope: tuple[Tensor, Tensor],
        ve: Tensor | None,
        v0: Tensor | None,
        rows: Tensor | None,
        ctx: AttentionContext,
    ) -> tuple[Tensor, Tensor]:
        """`w` is the physical block whose matrices this (virtual) layer runs; with `rows`
        the output is only at those positions ([B, R, d]), see `Attention.forward`."""
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0] * x + mix[1] * x0
        a, v = self.attn(rms_norm(x_in) * self.ln_scale, w.attn, rope, ve, v0, rows, ctx)
        if rows is not None:
            x_in = take_rows(x_in, rows)
        x_out = x_in + self.attn_scale.to(x.dtype) * a
        mlp_in = rms_norm(x_out) * self.ln_scale
        mlp_out = w.mlp(mlp_in)
        if ctx.adapter is not None:
            mlp_out = _adapt(ctx.adapter, "mlp", self.layer, mlp_in, mlp_out)
        x_out = x_out + self.mlp_scale.to(x.dtype) * mlp_out
        if self.dtg:
            g = torch.sigmoid(self.dtg_gate(x_in.detach()))
            x_out = x_in + g * (x_out - x_in)
        return x_out, v


class SmearGate(nn.Module):
    """Blend each position with the previous one through a per-channel sigmoid gate."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = role(nn.Parameter(torch.zeros(dim)), CONTROL)

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))
        prev = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), dim=1)
        return (1 - g) * x + g * prev


class ScaledEmbedding(nn.Module):
    """A small table projected to `out_dim` and scaled: BigramHash and value embeddings."""

    def __init__(self, rows: int, dim: int, out_dim: int, scale: float):
        super().__init__()
        self.embed = role(nn.Embedding(rows, dim), EMBEDDING)
        self.proj = role(CastedLinear(dim, out_dim, bias=False), MATRIX) if dim != out_dim else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)
        self.scale = role(nn.Parameter(torch.tensor(scale)), CONTROL)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.embed(ids)
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(h.dtype)


def bigram_hash(ids: Tensor, buckets: int) -> Tensor:
    """Bucket of (previous, current) token; the first position of a window has its own."""
    t = ids.to(torch.int32)
    mod = buckets - 1
    out = torch.full_like(t, mod)
    out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
    return out.long()


class GPT(nn.Module):
    """U-Net-skipped stack of blocks over token + BigramHash embeddings, tied softcapped head."""

    # The MLP each physical block builds; a family whose only difference is the MLP
    # (golf.models.relu2: the early board's relu²) subclasses GPT and names its own here.
    mlp_class: ClassVar[type[MLP]] = MLP

    def __init__(self, config: ModelConfig):
        super().__init__()
        cfg = self.config = config
        d, n = cfg.model_dim, cfg.num_virtual_layers
        self.tok_emb = role(nn.Embedding(cfg.vocab_size, d), EMBEDDING)
        if cfg.bigram_vocab_size:
            self.bigram = ScaledEmbedding(cfg.bigram_vocab_size, cfg.bigram_dim, d, 0.05)
            nn.init.zeros_(self.bigram.embed.weight)
        if cfg.smear:
            self.smear = SmearGate(d)
        num_encoder = n // 2
        num_skips = min(num_encoder, n - num_encoder)
        self.skip_weights = role(nn.Parameter(torch.ones(num_skips, d)), CONTROL)
        if cfg.skip_gates:
            self.skip_gates = role(nn.Parameter(torch.zeros(num_skips, d)), CONTROL)
        self.blocks = nn.ModuleList(Block(cfg, i, self.mlp_class) for i in range(n))
        # Training may switch depth recurrence on late: until then the stack runs its
        # physical layers once, through the first num_layers blocks, as the reference does.
        self.recur_active = True
        if cfg.ve_enabled:
            self.ve_shared = ScaledEmbedding(cfg.vocab_size, cfg.ve_dim, cfg.kv_dim, 0.1)
            nn.init.normal_(self.ve_shared.embed.weight, std=0.01)
            scales = (nn.Parameter(torch.ones(1)) for _ in cfg.ve_layers)
            self.ve_layer_scales = role(nn.ParameterList(scales), CONTROL)
        if not cfg.tie_embeddings:
            self.lm_head = role(CastedLinear(d, cfg.vocab_size, bias=False), EMBEDDING)
            self.lm_head._zero_init = True
        self._init_weights()
        # The tags live on the Parameter objects, which copy.deepcopy replaces; this
        # snapshot keeps them for copies, and fails now if a tensor has none.
        self._roles = roles_of(self)

    def _init_weights(self) -> None:
        """The reference init: orthogonal matrices (>= 64 each side), zero output
        projections, and other `.proj` matrices scaled by 1/sqrt(2 * layers)."""
        if self.tok_emb.weight.is_meta:  # built on the meta device: no values to fill
            return
        if self.config.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, std=self.config.tied_embed_init_std)
        n = len(self.blocks)
        for name, m in self.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if getattr(m, "_zero_init", False):
                nn.init.zeros_(m.weight)
            elif min(m.weight.shape) >= 64:
                nn.init.orthogonal_(m.weight)
                if name.endswith(".proj"):
                    with torch.no_grad():
                        m.weight.mul_(1.0 / math.sqrt(2 * n))

    def parameter_roles(self) -> dict[str, Role]:
        """State-dict name -> Role, as tagged above; MissingRole for an untagged tensor."""
        return roles_of(self, self._roles)

    @property
    def head_weight(self) -> Tensor:
        """[V, d]: the tied token embedding, or the separate head."""
        return self.tok_emb.weight if self.config.tie_embeddings else self.lm_head.weight

    def embed(self, ids: Tensor) -> Tensor:
        """[B,T] ids -> the stack's input x0: token (+ BigramHash) embedding, RMS-normed,
        then smeared. A family that builds its input otherwise overrides only this."""
        cfg = self.config
        x = self.tok_emb(ids)
        if cfg.bigram_vocab_size:
            x = x + self.bigram(bigram_hash(ids, cfg.bigram_vocab_size))
        x = rms_norm(x)
        if cfg.smear:
            x = self.smear(x)
        return x

    def forward_hidden(
        self, ids: Tensor, rows: Tensor | None = None, attention: AttentionContext | None = None
    ) -> Tensor:
        """[B,T] token ids -> [B,T,d] hidden after the final norm (what SLOT adapts).

        With `rows` ([B, R] positions per window) the result is [B, R, d], the hidden at
        those positions only: the last layer computes K/V at every position but its
        queries, attention output, MLP and the final norm only at `rows` (exact: every
        other position's output of the last layer feeds nothing). `attention` carries the
        kernel settings (golf.models.attention); without one, defaults for this call.
        """
        cfg = self.config
        ctx = attention if attention is not None else AttentionContext()
        x0 = x = self.embed(ids)
        rope = rotary(cfg, ids.size(1), ids.device)
        ve_base = self.ve_shared(ids) if cfg.ve_enabled else None
        skips: list[Tensor] = []
        v0: Tensor | None = None
        layers = cfg.virtual_layers if self.recur_active else range(cfg.num_layers)
        num_encoder = len(layers) // 2
        for i, p in enumerate(layers):
            if i >= num_encoder and skips:
                j = i - num_encoder
                s = self.skip_weights[j].to(x.dtype) * skips.pop()
                if cfg.skip_gates:
                    x = torch.lerp(s, x, torch.sigmoid(self.skip_gates[j].to(x.dtype)))
                else:
                    x = x + s
            ve = None
            if ve_base is not None and i in cfg.ve_layers:
                ve = ve_base * self.ve_layer_scales[cfg.ve_layers.index(i)].to(ve_base.dtype)
            last = rows if i == len(layers) - 1 else None
            x, v = self.blocks[i](x, x0, self.blocks[p], rope, ve, v0, last, ctx)
            if i == 0 and cfg.value_residual != "none":
                v0 = v
            if i < num_encoder:
                skips.append(x)
        return rms_norm(x)

    def logits(self, hidden: Tensor, adapter: Adapter | None = None) -> Tensor:
        """softcap * tanh((hidden @ W.T + the adapter's head update) / softcap)."""
        c = self.config.logit_softcap
        raw = F.linear(hidden, self.head_weight.to(hidden.dtype))
        if adapter is not None:
            raw = _adapt(adapter, "head", -1, hidden, raw)
        return c * torch.tanh(raw / c)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy of next-token targets [B,T]."""
        logits = self.logits(self.forward_hidden(ids))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
