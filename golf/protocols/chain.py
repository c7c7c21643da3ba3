"""A sequential chain's state between steps, and its bytes in the object store.

`ttt` and `ttt-phased` are chains: each step's scores depend on every step before it. A
chain hands out a `ChainStep` per step (`chain(...)` of the protocol); its `snapshot`
is everything needed to run the rest exactly as an uninterrupted run would: the step to
start at, the weights, the optimizer's buffers, the units scored so far and, for LoRA
chains with warm-start A, each adapter slot's carried A. The bytes
are a torch.save archive of tensors only (units as flat tensors and offsets), read back
through the weights-only loader (golf.formats.torchzip) under a size cap; anything else
is one CheckpointError line.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from golf.formats.torchzip import load_weights
from golf.protocols.collective import Group
from golf.protocols.scored import Scored
from golf.spec.errors import GolfError


class CheckpointError(GolfError):
    """A chain checkpoint cannot be read (truncated, edited, too large, foreign)."""


@dataclass
class ChainState:
    """Where a chain stands before step `step`: enough to resume it exactly.

    `optimizer` holds the optimizer's per-parameter buffers only, as
    `{"state": {index: {name: tensor}}}` (what `optimizer.state_dict()["state"]` holds);
    the hyperparameters come from the protocol's parameters when it resumes."""

    step: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scored: list[Scored] = field(default_factory=list)
    lora: dict[str, Tensor] = field(default_factory=dict)
    """Warm-start A per LoRA key ([slots, rank, in]), carried to the next batch; {} without."""


@dataclass
class ChainStep:
    """One step of a chain as it ran: its index of `steps`, the units it scored (rank 0;
    other ranks get []), and `snapshot()` of the state after it (call it before the
    chain goes on; None on the last step). `empty`: a step with nothing to score."""

    index: int
    steps: int
    units: list[Scored]
    snapshot: Callable[[], ChainState] | None
    empty: bool = False


Checkpoint = Callable[[ChainState], None]
"""Where a chain hands its state every `every` steps (a file, the object store)."""


def due(step: ChainStep, every: int) -> bool:
    """Whether a chain checkpoints after `step` when asked to every `every` steps."""
    return (
        every > 0 and step.snapshot is not None and not step.empty and (step.index + 1) % every == 0
    )


def collect(
    steps: Iterator[ChainStep],
    resume: ChainState | None,
    group: Group | None,
    progress: Callable[[int, list[Scored]], None] | None,
    checkpoint: Checkpoint | None,
    every: int,
) -> list[Scored]:
    """A chain's steps run to the end in one process: every unit in the order scored (a
    resumed run's restored units first; ranks other than 0 collect none), `progress` after
    each step that scored, `checkpoint` with the state every `every` steps."""
    first = group is None or group.rank == 0
    scored = list(resume.scored) if resume is not None and first else []
    for step in steps:
        scored.extend(step.units)
        if progress is not None and not step.empty:
            progress(step.index, step.units)
        if checkpoint is not None and due(step, every) and step.snapshot is not None:
            checkpoint(step.snapshot())
    return scored


def resume_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put a checkpoint's buffers into a freshly built optimizer."""
    fresh = optimizer.state_dict()
    buffers = state.get("state", {})
    shapes = [p.shape for group in optimizer.param_groups for p in group["params"]]
    for index, named in buffers.items():
        if not 0 <= index < len(shapes) or any(t.shape != shapes[index] for t in named.values()):
            raise CheckpointError(f"chain checkpoint's optimizer buffer {index} fits no parameter")
    fresh["state"] = buffers
    optimizer.load_state_dict(fresh)


def optimizer_buffers(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A copy of the optimizer's per-parameter buffers (they move on with the chain)."""
    return {
        "state": {
            int(i): {k: v.detach().clone() for k, v in s.items() if isinstance(v, Tensor)}
            for i, s in optimizer.state_dict()["state"].items()
        }
    }


def chain_bytes(state: ChainState) -> bytes:
    """The state as a torch.save archive of named tensors."""
    flat: dict[str, Tensor] = {"step": torch.tensor(state.step, dtype=torch.int64)}
    for name, tensor in state.model.items():
        flat[f"model/{name}"] = tensor.detach().cpu().contiguous()
    for index, buffers in state.optimizer.get("state", {}).items():
        for name, tensor in buffers.items():
            flat[f"optimizer/{int(index)}/{name}"] = tensor.detach().cpu().contiguous()
    for name, tensor in state.lora.items():
        flat[f"lora/{name}"] = tensor.detach().cpu().contiguous()
    units = state.scored
    flat["scored/units"] = torch.tensor([u.unit for u in units], dtype=torch.int64)
    flat["scored/offsets"] = torch.from_numpy(
        np.cumsum([0] + [len(u.targets) for u in units]).astype(np.int64)
    )
    flat["scored/targets"] = torch.from_numpy(
        np.concatenate([u.targets for u in units]).astype(np.int64)
        if units
        else np.zeros(0, np.int64)
    )
    flat["scored/nll"] = torch.from_numpy(
        np.concatenate([u.nll for u in units]).astype(np.float64)
        if units
        else np.zeros(0, np.float64)
    )
    out = io.BytesIO()
    torch.save(flat, out)
    return out.getvalue()


def checkpoint_cap(module: torch.nn.Module, n_tokens: int) -> int:
    """Most bytes a checkpoint of a chain over `n_tokens` can hold: the weights and one
    optimizer buffer per weight; 16 bytes (target, NLL) per target and 16 (id, offset)
    per unit, at most one unit per target; 1 MiB for the archive's names and structure."""
    weights = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return 2 * weights + 32 * n_tokens + (1 << 20)


def chain_state(data: bytes, max_bytes: int) -> ChainState:
    """A checkpoint read back from `chain_bytes`, at most `max_bytes` of tensors."""
    if len(data) > max_bytes:
        raise CheckpointError(f"chain checkpoint is {len(data)} bytes, over {max_bytes}")
    try:
        flat = load_weights(data, limit=max_bytes, max_tensors=1 << 16)
    except GolfError as e:
        raise CheckpointError(f"chain checkpoint unreadable: {e}") from None
    if not isinstance(flat, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in flat.items()
    ):
        raise CheckpointError("chain checkpoint is not a map of named tensors")
    try:
        return _state(flat)
    except (KeyError, ValueError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"chain checkpoint is inconsistent: {e}") from None


def _state(flat: dict[str, Tensor]) -> ChainState:
    step = flat["step"]
    if step.dtype != torch.int64 or step.numel() != 1 or int(step) < 0:
        raise ValueError("step is not one non-negative int64")
    model = {k.removeprefix("model/"): v for k, v in flat.items() if k.startswith("model/")}
    optimizer: dict[int, dict[str, Tensor]] = {}
    for key, tensor in flat.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            optimizer.setdefault(int(index), {})[name] = tensor
    units, offsets = flat["scored/units"], flat["scored/offsets"]
    targets, nll = flat["scored/targets"], flat["scored/nll"]
    if (units.dtype, offsets.dtype, targets.dtype, nll.dtype) != (
        torch.int64,
        torch.int64,
        torch.int64,
        torch.float64,
    ):
        raise ValueError("scored units have the wrong dtypes")
    bounds = offsets.tolist()
    if (
        units.dim() != 1
        or len(bounds) != units.numel() + 1
        or bounds[0] != 0
        or bounds[-1] != targets.numel()
        or targets.shape != nll.shape
        or any(b > a for a, b in zip(bounds[1:], bounds[:-1], strict=False))
    ):
        raise ValueError("scored offsets do not cut the targets")
    t, v = targets.numpy(), nll.numpy()
    scored = [
        Scored(int(u), t[lo:hi].copy(), v[lo:hi].copy())
        for u, lo, hi in zip(units.tolist(), bounds[:-1], bounds[1:], strict=True)
    ]
    lora = {k.removeprefix("lora/"): v for k, v in flat.items() if k.startswith("lora/")}
    return ChainState(int(step), model, {"state": optimizer}, scored, lora)


def resume_step(state: ChainState, steps: int) -> int:
    """The step a checkpoint resumes at, if the chain has it (none is taken after the last)."""
    if not 0 <= state.step < steps:
        raise CheckpointError(
            f"chain checkpoint resumes at step {state.step} of a {steps}-step chain"
        )
    return state.step


def resume_model(module: torch.nn.Module, state: ChainState) -> None:
    """Load a checkpoint's weights into the chain's model: every tensor, right shapes."""
    try:
        module.load_state_dict(state.model, strict=True)
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"chain checkpoint does not fit the model: {first}") from None


def resume_lora(state: ChainState, fresh: dict[str, Tensor]) -> dict[str, Tensor]:
    """A checkpoint's warm-start A, checked against the chain's own (`fresh`: same keys,
    shapes, dtypes), on the chain's device."""
    if set(state.lora) != set(fresh):
        raise CheckpointError("chain checkpoint's warm-start A does not fit the chain's LoRA")
    out = {}
    for key, want in fresh.items():
        got = state.lora[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(f"chain checkpoint's warm-start A {key} has the wrong shape")
        out[key] = got.to(want.device).clone()
    return out
