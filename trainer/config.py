"""Training recipe: every knob of train → EMA → TTT → GPTQ → pack, validated.

Defaults are the seed recipe (openai/parameter-golf PR #1488 on the PR #1313 base);
the `tiny` preset shrinks it to finish on two CPU cores in minutes. A run is fully
described by its `TrainConfig`, which the artifact's provenance records.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from golf.formats.quant import PASSTHROUGH_MAX_NUMEL
from golf.spec.config import ModelConfig
from golf.spec.config import preset as model_preset
from golf.spec.errors import ConfigError, parse_document

DataSource = Literal["train", "val"]
CalibrationSource = Literal["train", "val", "self"]


class TrainConfig(BaseModel):
    """One training run. Token counts are global (summed over ranks)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: ModelConfig = Field(default_factory=lambda: model_preset("seed"))
    seed: int = Field(1337, ge=0)

    # Stage 1: training.
    seq_len: int = Field(2048, ge=8, le=1 << 16)
    batch_tokens: int = Field(786_432, ge=8)  # global tokens per optimizer step
    micro_batch_seqs: int = Field(0, ge=0)  # sequences per forward; 0 = whole rank batch
    iterations: int = Field(20_000, ge=1)
    max_wallclock_s: float | None = Field(600.0, gt=0)  # None: by iterations only
    warmup_steps: int = Field(20, ge=0)  # LR warm-up
    warmdown_steps: int = Field(3500, ge=0)  # LR decays to 0 over the last steps
    matrix_lr: float = Field(0.025, gt=0, le=10)  # Muon, 2-D block matrices
    scalar_lr: float = Field(0.025, gt=0, le=10)  # AdamW, control and 1-D tensors
    embed_lr: float = Field(0.035, gt=0, le=10)  # AdamW, tied embedding and tables
    muon_momentum: float = Field(0.99, ge=0, lt=1)
    muon_momentum_warmup_start: float = Field(0.92, ge=0, lt=1)
    muon_momentum_warmup_steps: int = Field(1500, ge=0)
    muon_backend_steps: int = Field(5, ge=1, le=20)  # Newton–Schulz iterations
    muon_weight_decay: float = Field(0.04, ge=0, le=1)
    adam_weight_decay: float = Field(0.04, ge=0, le=1)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(0.3, ge=0)  # 0 disables
    ema_decay: float = Field(0.997, ge=0, lt=1)
    qat_threshold: float = Field(0.15, ge=0, le=1)  # late QAT once LR scale < this; 0 off
    recur_start_step: int | None = Field(None, ge=0)  # depth recurrence from this step
    log_every: int = Field(50, ge=1)

    # Stage 2: pre-quant AdamW test-time training on the EMA weights.
    ttt_epochs: int = Field(10, ge=0)  # 0 skips TTT; PR #1488 ran 10
    ttt_lr: float = Field(4.5e-4, gt=0, le=1)
    ttt_freeze_blocks: int = Field(2, ge=0)
    ttt_batch_seqs: int = Field(32, ge=1)
    ttt_data: DataSource = "train"
    ttt_tokens: int = Field(4_194_304, ge=1)  # tokens of the source adapted on

    # Stage 3: GPTQ.
    gptq: bool = True  # False: round-to-nearest
    gptq_calibration: CalibrationSource = "train"
    gptq_seqs: int = Field(64, ge=1)  # calibration sequences of seq_len tokens
    gptq_block: int = Field(128, ge=1)
    gptq_damp: float = Field(0.01, ge=0, le=1)
    gptq_act_order: bool = True
    # Tensors this small stay fp16 (the reference's 65,536); the tiny model sets 0 so
    # that its matrices are quantized at all.
    passthrough_max_numel: int = Field(PASSTHROUGH_MAX_NUMEL, ge=0)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.batch_tokens % self.seq_len:
            raise ValueError(
                f"batch_tokens {self.batch_tokens} is not a multiple of seq_len {self.seq_len}"
            )
        if self.warmup_steps + self.warmdown_steps > self.iterations:
            raise ValueError(
                f"warmup_steps + warmdown_steps ({self.warmup_steps} + {self.warmdown_steps})"
                f" exceed iterations {self.iterations}"
            )
        if self.recur_start_step is not None and not self.model.recur_layers:
            raise ValueError("recur_start_step needs model.recur_layers")
        if self.ttt_freeze_blocks > self.model.num_layers:
            raise ValueError(
                f"ttt_freeze_blocks {self.ttt_freeze_blocks} exceeds the "
                f"{self.model.num_layers} layers"
            )
        return self

    @property
    def batch_seqs(self) -> int:
        return self.batch_tokens // self.seq_len

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return TrainConfig.parse(self.model_dump() | changes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> TrainConfig:
        """Validate a config document; any problem is a ConfigError with one line."""
        return parse_document(cls, doc, "training config", "training config ")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A TOML file: top-level fields, `preset = "tiny"` as the base, `[model]` table."""
        try:
            doc = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not TOML: {e}") from None
        base = preset(doc.pop("preset", "seed")).model_dump()
        model = base.pop("model") | doc.pop("model", {})
        return cls.parse(base | doc | {"model": model})


PRESETS: dict[str, TrainConfig] = {
    # The seed record's recipe on 8×H100 within 600 s.
    "seed": TrainConfig(),
    # The tiny model on the full demo data: about 85 s of training on two CPU cores
    # (16-sequence batches run faster per token there than 32-sequence ones).
    "tiny": TrainConfig(
        model=model_preset("tiny"),
        seq_len=256,
        batch_tokens=4096,
        iterations=560,
        max_wallclock_s=None,
        warmup_steps=10,
        warmdown_steps=200,
        muon_momentum_warmup_steps=100,
        ema_decay=0.98,
        log_every=10,
        ttt_epochs=1,
        ttt_batch_seqs=16,
        ttt_tokens=262_144,
        gptq_seqs=32,
        gptq_block=64,
        passthrough_max_numel=0,
    ),
}


def preset(name: str) -> TrainConfig:
    """A named recipe; an unknown name is a ConfigError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown training preset {name!r}; known: {', '.join(PRESETS)}"
        ) from None
