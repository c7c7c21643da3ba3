"""The whole recipe: train → EMA → pre-quant TTT → GPTQ → pack → verify.

Every rank trains and adapts (DDP); rank 0 alone quantizes, writes the artifact and
verifies it through the public reader, so what is reported is what a scorer will load.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from torch import nn

from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate, summarize
from golf.formats.artifact import (
    BUDGET_BYTES,
    Provenance,
    load_model,
    read_artifact,
    write_artifact,
)
from golf.formats.quant import QTensor, quantize_state_dict
from golf.models.gpt import GPT
from golf.spec.errors import MismatchError
from golf.spec.jobplan import plan_protocol
from golf.spec.params import EvalParams
from trainer.config import TrainConfig
from trainer.dist import Dist
from trainer.gptq import calibration_batches, quantize_model
from trainer.train import train
from trainer.ttt import ttt

Record = dict[str, Any]


class Reporter:
    """Where a run says what it does: progress callbacks per stage and a JSONL log."""

    def __init__(self, log: IO[str] | None = None):
        self._log = log

    def record(self, record: Record) -> None:
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()

    def start(self, stage: str, total: int | None) -> None:
        """A stage with `total` units of work begins."""

    def advance(self, stage: str, completed: int, record: Record) -> None:
        """`completed` units of the stage are done; `record` holds its latest figures."""


@dataclass
class RunSummary:
    """Figures of one run, per stage; `rows` is the summary table."""

    out: str
    artifact_sha256: str
    artifact_bytes: int
    code_bytes: int
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.artifact_bytes + self.code_bytes

    def size_line(self) -> str:
        verdict = "fits" if self.total_bytes <= BUDGET_BYTES else "OVER BUDGET"
        return (
            f"{self.artifact_bytes:,} artifact + {self.code_bytes:,} code = "
            f"{self.total_bytes:,} bytes vs {BUDGET_BYTES:,}: {verdict}"
        )


def run(
    cfg: TrainConfig,
    dataset: Dataset,
    out: Path,
    dist: Dist,
    *,
    code_bytes: int = 0,
    reporter: Reporter | None = None,
) -> RunSummary | None:
    """Produce the artifact at `out`; rank 0 returns the run's figures, others None."""
    reporter = reporter or Reporter()
    if dataset.vocab_size != cfg.model.vocab_size:
        raise MismatchError(
            f"model vocab {cfg.model.vocab_size} differs from the {dataset.vocab_size} pieces "
            f"of {dataset.name}'s tokenizer"
        )
    figures: dict[str, Any] = {}
    train_tokens = dataset.train_tokens()

    started = time.perf_counter()
    reporter.start("train", cfg.iterations)
    result = train(
        cfg,
        train_tokens,
        dist,
        on_log=reporter.record,
        progress=lambda step, total, rec: reporter.advance("train", step, rec),
    )
    figures["train"] = {
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": result.elapsed_s,
        "tok_s": result.tokens / result.elapsed_s,
        "final_loss": result.log[-1]["loss"] if result.log else None,
    }

    model = GPT(cfg.model).to(dist.device)
    model.load_state_dict(result.ema_state)
    if cfg.ttt_epochs:
        ttt_tokens = train_tokens if cfg.ttt_data == "train" else dataset.val_tokens()
        steps = {"done": 0}

        def ttt_step(done: int, total: int) -> None:
            if done == 1:  # the stage's size is the optimizer steps, known once it runs
                reporter.start("ttt", total)
            steps["done"] = done
            reporter.advance("ttt", done, {})

        adapted = ttt(
            model,
            ttt_tokens,
            cfg,
            dist,
            on_log=reporter.record,
            progress=lambda epoch, total, rec: reporter.advance("ttt", steps["done"], rec),
            step_progress=ttt_step,
        )
        figures["ttt"] = {
            "data": cfg.ttt_data,
            "epochs": adapted.epochs,
            "tokens": adapted.tokens,
            "loss_before": adapted.loss_before,
            "loss_after": adapted.loss_after,
        }
    model.eval()
    if not dist.is_main:
        dist.barrier()
        return None

    tensors = _quantize(cfg, dataset, model, reporter)
    figures["quantize"] = {"method": "gptq" if cfg.gptq else "rtn", "tensors": len(tensors)}
    reporter.start("pack", None)
    write_artifact(
        out,
        tensors,
        cfg.model,
        tokenizer_sha256=dataset.tokenizer_sha256,
        vocab_size=dataset.vocab_size,
        provenance=provenance(cfg),
        code_bytes=code_bytes,
    )
    artifact = read_artifact(out)
    summary = RunSummary(str(out), artifact.sha256, artifact.n_bytes, code_bytes, figures)
    reporter.advance("pack", 1, {"bytes": artifact.n_bytes})

    figures["verify"] = verify(cfg, dataset, model, load_model(artifact, dist.device), reporter)
    figures["seconds"] = time.perf_counter() - started
    reporter.record({"stage": "summary", **figures, "size": summary.size_line()})
    dist.barrier()
    return summary


def _quantize(
    cfg: TrainConfig, dataset: Dataset, model: GPT, reporter: Reporter
) -> dict[str, QTensor]:
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    if not cfg.gptq:
        roles = model.parameter_roles()
        return quantize_state_dict(state, roles, passthrough_max_numel=cfg.passthrough_max_numel)
    batches = calibration_batches(
        cfg.gptq_calibration, dataset, model, cfg.gptq_seqs, cfg.seq_len, cfg.seed
    )
    reporter.start("gptq", len(state))
    done = iter(range(1, len(state) + 1))
    return quantize_model(
        model,
        batches,
        block=cfg.gptq_block,
        damp=cfg.gptq_damp,
        act_order=cfg.gptq_act_order,
        passthrough_max_numel=cfg.passthrough_max_numel,
        progress=lambda name: reporter.advance("gptq", next(done), {"tensor": name}),
    )


def verify(
    cfg: TrainConfig, dataset: Dataset, model: GPT, dequantized: GPT, reporter: Reporter
) -> dict[str, float]:
    """Plain val_bpb before and after quantization, and, for GPTQ, round-to-nearest's too."""
    models: dict[str, nn.Module] = {"pre_quant": model, "artifact": dequantized}
    if cfg.gptq:
        models["rtn"] = _rtn_model(model, cfg.passthrough_max_numel)
    tokens = dataset.val_tokens(cfg.seq_len)
    lut = dataset.byte_lut(cfg.model.vocab_size)
    params = EvalParams(seq_len=cfg.seq_len, batch_windows=16)
    batches = plan_protocol("plain", tokens.size, params).batches
    reporter.start("verify", batches * len(models))  # a batch at a time: minutes on a CPU
    bpb: dict[str, float] = {}
    done = {"batches": 0}

    def batch_done(name: str) -> None:
        done["batches"] += 1
        reporter.advance("verify", done["batches"], {"model": name})

    for name, m in models.items():
        records = evaluate(
            m, tokens, lut, "plain", params, progress=lambda k, batch, who=name: batch_done(who)
        )
        bpb[name] = summarize(records)["val_bpb"]
        reporter.advance("verify", done["batches"], {name: bpb[name]})
    figures = {
        "val_bpb_pre_quant": bpb["pre_quant"],
        "val_bpb_artifact": bpb["artifact"],
        "quant_gap": bpb["artifact"] - bpb["pre_quant"],
    }
    if "rtn" in bpb:
        figures |= {"val_bpb_rtn": bpb["rtn"], "rtn_gap": bpb["rtn"] - bpb["pre_quant"]}
    return figures


def _rtn_model(model: GPT, passthrough_max_numel: int) -> GPT:
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    tensors = quantize_state_dict(
        state, model.parameter_roles(), passthrough_max_numel=passthrough_max_numel
    )
    rtn = GPT(model.config)
    rtn.load_state_dict({name: qt.dequantize() for name, qt in tensors.items()})
    return rtn.to(model.head_weight.device).eval()


def provenance(cfg: TrainConfig) -> Provenance:
    """What reviewers need to judge the run: seeds, TTT data, GPTQ calibration, recipe."""
    recipe = cfg.model_dump(mode="json", exclude={"model"})
    return Provenance(
        seeds=(cfg.seed,),
        ttt_data_source=cfg.ttt_data if cfg.ttt_epochs else None,
        ttt_epochs=cfg.ttt_epochs,
        gptq_calibration_source=cfg.gptq_calibration if cfg.gptq else None,
        notes={"recipe": json.dumps(recipe, sort_keys=True)},
    )
