"""`ttt`: chunked score-first global SGD (the records' `eval_val_sliding_ttt`).

The stream's targets are cut into chunks of `ttt_chunk_tokens`; a sliding window belongs to
the chunk holding its first scored target. Chunk by chunk: score all its windows with the
current weights (no gradient), then, except after the last chunk, train on the chunk's
tokens — `ttt_epochs` passes of mean cross entropy over its whole L-token sequences,
`ttt_batch_seqs` per step, gradient norm clipped, SGD with momentum, learning rate
`ttt_lr·½(1 + cos(π c / (chunks − 1)))`. Weights and momentum carry across chunks; every
target is scored before any step that saw it. A chunk without windows is skipped whole,
as the records do. The window plan is the protocol's (`plan=legacy` reproduces
2026-03-23, whose windows are golf's legacy plan on a truncated val stream).

Deterministic: no randomness, and the order is fixed, so `canonical` and `record` mode
agree at world size 1. `reference=True` scores each window alone with full logits.

On a gang of ranks (`group`, workers/gang.py) a chunk's window batches and each step's
rows are shared out; every window is scored in the batch it has at world 1, and the
gradient sum is fixed-order, so the ranks agree to the bit and world 1 only up to the
rounding of a split sum (docs/TTT.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.models.attention import segment_ids
from golf.models.roles import Role
from golf.protocols.base import Batch, Scorer
from golf.protocols.chain import (
    ChainState,
    ChainStep,
    Checkpoint,
    collect,
    optimizer_buffers,
    resume_model,
    resume_optimizer,
    resume_step,
)
from golf.protocols.collective import Group, Solo
from golf.protocols.scored import Scored
from golf.protocols.sliding import Sliding
from golf.protocols.stream import (
    ScoredProgress,
    StreamProtocol,
    cosine_lr,
    module_of,
    sgd_chunks,
    trainable_copy,
)
from golf.spec.documents import BOS_ID
from golf.spec.params import EvalParams
from golf.spec.plan import StreamOutline, WindowPlan


class TTT(StreamProtocol):
    """Score a chunk, then train on it; all parameters but the frozen blocks'."""

    name = "ttt"
    doc_bounded = True

    def default_stride(self, seq_len: int) -> int:
        return min(64, seq_len)

    def cost_factor(self, params: EvalParams) -> float:
        """One frozen forward per window-token, plus ~3 forward-equivalents per trained
        token and epoch, spread over the L/S window-tokens of each target."""
        stride = params.stride or self.default_stride(params.seq_len)
        return 1.0 + 3.0 * params.ttt_epochs * stride / params.seq_len

    def chunk_of(self, plan: WindowPlan, params: EvalParams) -> tuple[int, np.ndarray]:
        """(number of chunks, chunk index of each window)."""
        size = params.ttt_chunk_tokens
        n_chunks = -(-plan.n_targets // size)
        first = (plan.starts + plan.score_from) // size
        return n_chunks, np.minimum(first, n_chunks - 1)

    def steps(self, n_tokens: int, tokens: np.ndarray | None, params: EvalParams) -> int:
        return -(-(n_tokens - 1) // params.ttt_chunk_tokens)

    def chainable(self, params: EvalParams) -> bool:
        return True  # no draws, no boundaries: the order is the plan's

    def outline(self, tokens: np.ndarray, params: EvalParams) -> StreamOutline:
        """Windows per chunk (a chunk without windows is a step of none)."""
        plan = self.plan(len(tokens) - 1, params)
        n_chunks, chunk = self.chunk_of(plan, params)
        whole = plan
        if params.max_windows is not None:
            whole = self.plan(len(tokens) - 1, params.model_copy(update={"max_windows": None}))
        sizes = np.bincount(chunk, minlength=n_chunks) if len(plan) else np.zeros(0, np.int64)
        return StreamOutline(tuple(int(n) for n in sizes), int(plan.scored_tokens), len(whole))

    def train_params(self, module: nn.Module, params: EvalParams) -> list[nn.Parameter]:
        """Every parameter except those the freeze settings leave out (see EvalParams)."""
        roles = module.parameter_roles() if hasattr(module, "parameter_roles") else {}
        frozen = tuple(f"blocks.{i}." for i in range(params.ttt_freeze_blocks))
        out = []
        for name, p in module.named_parameters():
            if name.startswith(frozen):
                matrix = roles.get(name, Role.MATRIX if p.dim() >= 2 else Role.CONTROL)
                if params.ttt_freeze_scope == "all" or matrix != Role.MATRIX:
                    continue
            out.append(p)
        return out

    def score(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None = None,
        *,
        resume: ChainState | None = None,
        checkpoint: Checkpoint | None = None,
        every: int = 1,
        group: Group | None = None,
    ) -> list[Scored]:
        """The whole chain (from `resume` on, with its units first); `checkpoint` gets the
        state every `every` chunks. With a `group` of several ranks, rank 0 returns every
        unit and the others []."""
        steps = self.chain(model, tokens, params, resume=resume, group=group)
        return collect(steps, resume, group, progress, checkpoint, every)

    def chain(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        *,
        resume: ChainState | None = None,
        group: Group | None = None,
        save: Callable[[int], bool] | None = None,
    ) -> Iterator[ChainStep]:
        """The chain chunk by chunk. With several ranks, a chunk's windows are split by
        whole `batch_windows` batches (each window scored in the batch it has at world 1)
        and its training sequences by contiguous rows (`sgd_chunks`); rank 0 gathers.
        Every step but the last has a snapshot (`save`, asked by LoRA chains: unused)."""
        params = self.resolve(params)
        group = group if group is not None else Solo()
        work = trainable_copy(model)
        module = module_of(work)
        plan = self.plan(tokens.numel() - 1, params)
        n_chunks, chunk = self.chunk_of(plan, params)
        train = self.train_params(module, params)
        optimizer = torch.optim.SGD(train, lr=params.ttt_lr, momentum=params.ttt_momentum)
        scored: list[Scored] = []
        begin = 0
        if resume is not None:
            resume_model(module, resume)
            resume_optimizer(optimizer, resume.optimizer)
            begin = resume_step(resume, n_chunks)
            scored = list(resume.scored) if group.rank == 0 else []
        bounds = np.searchsorted(chunk, np.arange(n_chunks + 1))
        for c in range(begin, n_chunks):
            windows = range(int(bounds[c]), int(bounds[c + 1]))
            units: list[Scored] = []
            if len(windows) > 0:
                mine = rank_windows(windows, params.batch_windows, group)
                units = group.gather_units(self.score_windows(work, tokens, plan, mine, params))
                scored.extend(units)
                if c < n_chunks - 1 and params.ttt_epochs > 0:
                    lo = c * params.ttt_chunk_tokens
                    hi = min(lo + params.ttt_chunk_tokens, plan.n_targets)
                    sgd_chunks(
                        work,
                        train,
                        optimizer,
                        tokens,
                        lo,
                        hi,
                        seq_len=params.seq_len,
                        batch_seqs=params.ttt_batch_seqs,
                        epochs=params.ttt_epochs,
                        clip=params.ttt_grad_clip,
                        lr=cosine_lr(params.ttt_lr, c, n_chunks),
                        doc_bounded=params.doc_bounded,
                        group=group,
                    )

            def snapshot(c: int = c, done: int = len(scored)) -> ChainState:
                return ChainState(
                    c + 1,
                    {k: v.detach().clone() for k, v in module.state_dict().items()},
                    optimizer_buffers(optimizer),
                    scored[:done],
                )

            last = c == n_chunks - 1
            yield ChainStep(c, n_chunks, units, None if last else snapshot, len(windows) == 0)

    def score_windows(
        self, model: Scorer, tokens: Tensor, plan: WindowPlan, windows: range, params: EvalParams
    ) -> list[Scored]:
        """The windows' scores under the current weights, no gradient."""
        if params.reference:
            return [self._reference_window(model, tokens, plan, w, params) for w in windows]
        units: list[Scored] = []
        sliding = Sliding()
        for lo in range(windows.start, windows.stop, params.batch_windows):
            part = range(lo, min(lo + params.batch_windows, windows.stop))
            batch = Batch.from_plan(tokens, plan, part)
            nll = sliding.nll(model, batch, params).double().cpu().numpy()
            for row, w in enumerate(part):
                first, length = int(plan.score_from[w]), int(plan.lengths[w])
                targets = int(plan.starts[w]) + np.arange(first, length, dtype=np.int64)
                units.append(Scored(w, targets, nll[row, first:length].copy()))
        return units

    @staticmethod
    def _reference_window(
        model: Scorer, tokens: Tensor, plan: WindowPlan, w: int, params: EvalParams
    ) -> Scored:
        """The literal algorithm: one window, full logits, cross entropy everywhere."""
        start, length, first = int(plan.starts[w]), int(plan.lengths[w]), int(plan.score_from[w])
        x = tokens[start : start + length][None]
        y = tokens[start + 1 : start + length + 1]
        with torch.inference_mode():
            if params.doc_bounded:
                hidden = model.forward_hidden(x, segments=segment_ids(x, BOS_ID))  # type: ignore[call-arg]
            else:
                hidden = model.forward_hidden(x)
            nll = F.cross_entropy(model.logits(hidden)[0].float(), y, reduction="none")
        targets = start + np.arange(first, length, dtype=np.int64)
        return Scored(w, targets, nll[first:].double().cpu().numpy())


def rank_windows(windows: range, batch_windows: int, group: Group) -> range:
    """This rank's contiguous share of a chunk's windows, in whole batches."""
    if group.world == 1:
        return windows
    n_batches = -(-len(windows) // batch_windows)
    lo = n_batches * group.rank // group.world
    hi = n_batches * (group.rank + 1) // group.world
    start = windows.start + lo * batch_windows
    return range(start, min(windows.start + hi * batch_windows, windows.stop))
