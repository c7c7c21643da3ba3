"""Model configuration: every architectural knob of the SP1024 stack, validated.

Defaults are the seed record (PR #1313/#1488 lineage). Knobs that only some records
use (gated skips, attention gate, DTG, depth recurrence, the `alpha` value residual)
are off unless a preset or the user turns them on. A config is frozen and compares by
value, so it can travel inside artifact metadata and come back equal.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from golf.spec.errors import ConfigError, parse_document

ValueResidual = Literal["none", "gate", "alpha"]


class ModelConfig(BaseModel):
    """Hyperparameters that fix the GPT's tensor names, shapes and forward math.

    Every number has an upper bound too: a config arrives in untrusted artifact
    metadata, and it must not describe a model no machine could build.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    vocab_size: int = Field(1024, ge=2, le=1 << 18)
    num_layers: int = Field(11, ge=1, le=256)
    model_dim: int = Field(512, ge=2, le=16384)
    num_heads: int = Field(8, ge=1, le=256)
    num_kv_heads: int = Field(4, ge=1, le=256)
    mlp_mult: float = Field(3.0, gt=0, le=64)
    tie_embeddings: bool = True
    tied_embed_init_std: float = Field(0.005, ge=0, le=1)
    logit_softcap: float = Field(30.0, gt=0, le=1e4)
    rope_base: float = Field(10000.0, gt=0, le=1e9)
    # 0 rotates the whole head; otherwise only the first rope_dims of each head.
    rope_dims: int = Field(16, ge=0, le=16384)
    # Past this length the RoPE base is NTK-scaled, as the reference Rotary does.
    rope_train_seq_len: int = Field(2048, ge=1, le=1 << 20)
    qk_gain_init: float = Field(5.25, ge=-1e3, le=1e3)
    # Scale each block's normed inputs by 1/sqrt(layer + 1).
    ln_scale: bool = True
    # Exclusive self attention on the last n (virtual) layers.
    xsa_last_n: int = Field(11, ge=0, le=1024)
    # "gate": attn.vrl_gate on layers >= 1, v = (1-s)v + s*v_first, v_first before VE.
    # "alpha": attn.vrl_alpha on every layer, v = v + s*v0, v0 after VE.
    value_residual: ValueResidual = "gate"
    bigram_vocab_size: int = Field(1024, ge=0, le=1 << 20)  # 0 disables BigramHash
    bigram_dim: int = Field(128, ge=1, le=16384)
    smear: bool = True
    skip_gates: bool = False  # x = lerp(w*skip, x, sigmoid(g)) instead of x + w*skip
    attn_gate: bool = False  # per-head sigmoid gate on the attention output
    dtg: bool = False  # dynamic token gate on each block's update
    ve_enabled: bool = True
    ve_dim: int = Field(128, ge=1, le=16384)
    ve_layers: tuple[int, ...] = (9, 10)  # virtual layer indices, in scale order
    # Physical layers run a second time right after the last of them (e.g. 4,5).
    recur_layers: tuple[int, ...] = ()

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
        """Physical layer run at each depth: recurrence repeats recur_layers in place."""
        n = self.num_layers
        if not self.recur_layers:
            return tuple(range(n))
        cut = max(self.recur_layers) + 1
        return (*range(cut), *self.recur_layers, *range(cut, n))

    @property
    def num_virtual_layers(self) -> int:
        return len(self.virtual_layers)

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        d, h, kv = self.model_dim, self.num_heads, self.num_kv_heads
        if d % h:
            raise ValueError(f"model_dim {d} is not divisible by num_heads {h}")
        if h % kv:
            raise ValueError(f"num_heads {h} is not divisible by num_kv_heads {kv}")
        hd = d // h
        if hd % 2:
            raise ValueError(f"head_dim {hd} (model_dim / num_heads) must be even for RoPE")
        rd = self.rope_dims
        if rd and (rd % 2 or not 4 <= rd <= hd):
            raise ValueError(f"rope_dims {rd} must be 0 (whole head) or even in [4, {hd}]")
        if self.mlp_hidden < 1:
            raise ValueError(f"mlp_mult {self.mlp_mult} gives an empty MLP at model_dim {d}")
        if self.bigram_vocab_size == 1:
            raise ValueError("bigram_vocab_size must be 0 (off) or at least 2")
        _check_layers("recur_layers", self.recur_layers, self.num_layers, ordered=True)
        nv = self.num_virtual_layers
        if self.xsa_last_n > nv:
            raise ValueError(f"xsa_last_n {self.xsa_last_n} exceeds the {nv} layers")
        if self.ve_enabled:
            if not self.ve_layers:
                raise ValueError("ve_enabled needs at least one layer in ve_layers")
            _check_layers("ve_layers", self.ve_layers, nv, ordered=False)
        return self

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some fields changed (model_copy would skip validation)."""
        return ModelConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> "ModelConfig":
        """Validate a config document; any problem is a ConfigError with one line."""
        return parse_document(cls, doc, "model config")


def _check_layers(name: str, layers: tuple[int, ...], n: int, *, ordered: bool) -> None:
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise ValueError(f"{name} {list(layers)}: {bad[0]} is outside [0, {n})")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{name} {list(layers)} repeats a layer")
    if ordered and list(layers) != sorted(layers):
        raise ValueError(f"{name} {list(layers)} must be increasing")


PRESETS: dict[str, ModelConfig] = {
    # The seed record: 11L d512 8/4 heads, MLP x3, XSA-all, VRL gate, VE on 9,10,
    # BigramHash 1024x128, partial RoPE 16, LN scale, softcap 30, tied embeddings.
    "seed": ModelConfig(),
    # Every seed feature at CPU-test size; variants are switched on per test.
    "tiny": ModelConfig(
        num_layers=4,
        model_dim=64,
        num_heads=4,
        num_kv_heads=2,
        rope_dims=8,
        xsa_last_n=4,
        bigram_vocab_size=256,
        bigram_dim=32,
        ve_dim=32,
        ve_layers=(2, 3),
        rope_train_seq_len=256,
    ),
}


def preset(name: str) -> ModelConfig:
    """A named config; an unknown name is a ConfigError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
