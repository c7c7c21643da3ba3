"""`ttt-phased`: per-document LoRA plus global SGD phases on already-scored documents
(the records' `eval_val_ttt_phased` + `train_val_ttt_global_sgd_distributed`).

As `ttt-lora`, and when the first `b_k = prefix·(k+1) // phases` documents (prefix =
`phased_prefix_docs`) have been scored, the base weights are trained on those documents:
a fresh SGD with momentum over all parameters, their token spans concatenated (ordered by
length rank, as the records sort them), cut into `global_chunk_tokens` chunks (the last
one left out), cosine learning rate over the chunks, `global_batch_seqs` L-token
sequences per step packed in one row with document-bounded attention, gradient clipped.
Scoring then resumes with the new base and fresh adapters. Every trained token was scored
before under older weights, so the score stays first.

Boundaries: `canonical` stops exactly after b_k documents of the processing order (the
batch that straddles a boundary is cut in two), `A` seeded per batch; `record` checks the
count after each whole batch, as the record's single process does, so a phase may start
up to a batch late and train on the first b_k of the documents scored so far.

On a gang of ranks (canonical only) the batches between two phases go round-robin; a
phase's global SGD runs on every rank, its rows split when unpacked and whole on each
rank when packed (a packed row cannot be cut without changing its attention), so packed
runs equal world 1 to the bit (docs/TTT.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from golf.models.lora import BatchedLoRA
from golf.protocols.base import Scorer
from golf.protocols.chain import (
    ChainState,
    ChainStep,
    Checkpoint,
    due,
    resume_model,
    resume_step,
)
from golf.protocols.collective import Group, Solo
from golf.protocols.scored import Scored
from golf.protocols.stream import ScoredProgress, cosine_lr, module_of, sgd_chunks, trainable_copy
from golf.protocols.ttt_lora import TTTLoRA, batch_generator, lora_shape
from golf.spec.documents import DocBatch, Documents, doc_batches, find_documents
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import StreamOutline


def phase_boundaries(n_docs: int, params: EvalParams) -> list[int]:
    """Documents scored before each phase: prefix·(k+1) // phases."""
    prefix = max(0, min(n_docs, params.phased_prefix_docs))
    if prefix == 0:
        return []
    return [prefix * (k + 1) // params.phased_phases for k in range(params.phased_phases)]


def canonical_batches(batches: list[DocBatch], bounds: list[int], size: int) -> list[DocBatch]:
    """The processing order cut exactly at the phase boundaries, then into `size`s."""
    order = np.concatenate([b.docs for b in batches])
    origin = np.concatenate([np.full(len(b.docs), b.order) for b in batches])
    edges = sorted({0, len(order), *[b for b in bounds if 0 < b < len(order)]})
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        for first in range(lo, hi, size):
            last = min(first + size, hi)
            out.append(DocBatch(int(origin[first]), order[first:last]))
    return out


def phase_plan(
    docs: Documents,
    batches: list[DocBatch],
    bounds: list[int],
    record_rng: torch.Generator | None,
) -> list[list[list[int]]]:
    """Per batch, the prefixes (documents to train on) of the phases that run after it.

    Canonical: every boundary the batch ends on (equal boundaries of a tiny prefix);
    record: at most one phase per batch end, as the record checks the count, training
    on the first b_k of the documents scored so far (by length rank)."""
    rank = np.empty(len(docs), dtype=np.int64)
    rank[np.argsort(docs.lengths, kind="stable")] = np.arange(len(docs))
    done: list[int] = []
    phase = 0
    plan: list[list[list[int]]] = []
    for batch in batches:
        after: list[list[int]] = []
        if phase < len(bounds):
            done.extend(batch.docs.tolist())
        while phase < len(bounds) and len(done) >= bounds[phase]:
            after.append(sorted(done, key=lambda j: rank[j])[: bounds[phase]])
            phase += 1
            if record_rng is not None:
                break
        plan.append(after)
    return plan


class TTTPhased(TTTLoRA):
    """LoRA per document, with global SGD phases over the scored prefix."""

    name = "ttt-phased"

    def cost_factor(self, params: EvalParams) -> float:
        return super().cost_factor(params) + 0.5

    def shardable(self, params: EvalParams) -> bool:
        return False  # the phases chain the batches

    def steps(self, n_tokens: int, tokens: np.ndarray | None, params: EvalParams) -> int:
        if tokens is None:
            return 1
        return len(self.batches(find_documents(tokens), self.resolve(params)))

    def batches(self, docs: Documents, params: EvalParams) -> list[DocBatch]:
        """The chain's document batches in processing order (canonical: cut at phases)."""
        batches = doc_batches(docs, params.lora_batch_docs)
        if params.ttt_mode == "record":
            return batches
        bounds = phase_boundaries(len(docs), params)
        return canonical_batches(batches, bounds, params.lora_batch_docs)

    def chainable(self, params: EvalParams) -> bool:
        """Canonical only: record mode's boundaries follow its batch timing."""
        return params.ttt_mode == "canonical"

    def phases(
        self, step_sizes: tuple[int, ...], params: EvalParams, steps_done: int
    ) -> tuple[int, int] | None:
        """Canonical batches end on the boundaries, and a phase runs with the batch that
        reaches its boundary: the phases done are the boundaries the steps have passed."""
        bounds = phase_boundaries(sum(step_sizes), params)
        scored = sum(step_sizes[:steps_done])
        return sum(1 for b in bounds if b <= scored), len(bounds)

    def outline(self, tokens: np.ndarray, params: EvalParams) -> StreamOutline:
        """Documents per batch of the chain's processing order."""
        docs = find_documents(tokens)
        sizes = tuple(len(b.docs) for b in self.batches(docs, params))
        return StreamOutline(sizes, int(docs.targets.sum()), len(docs))

    def score(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None = None,
        *,
        only: object = None,
        resume: ChainState | None = None,
        checkpoint: Checkpoint | None = None,
        every: int = 1,
        group: Group | None = None,
    ) -> list[Scored]:
        """The whole chain (from `resume` on, with its units first); `checkpoint` gets the
        state every `every` batches. With a `group` of several ranks, rank 0 returns every
        unit and the others []."""
        if only is not None:
            raise ConfigError("ttt-phased is one chain: it cannot run a subset of its batches")
        first = resume is not None and (group is None or group.rank == 0)
        scored = list(resume.scored) if first and resume is not None else []
        for step in self.chain(model, tokens, params, resume=resume, group=group):
            scored.extend(step.units)
            if progress is not None:
                progress(step.index, step.units)
            if checkpoint is not None and due(step, every) and step.snapshot is not None:
                checkpoint(step.snapshot())
        return scored

    def chain(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        *,
        resume: ChainState | None = None,
        group: Group | None = None,
    ) -> Iterator[ChainStep]:
        """The chain batch by batch. With several ranks (canonical mode only), the
        batches between two phases go round-robin, one per rank at a time (each batch is
        its own: its documents and its seeded draws), rank 0 gathering each round; the
        phases' global SGD runs on every rank (`sgd_chunks`: rows split when unpacked)."""
        params = self.resolve(params)
        group = group if group is not None else Solo()
        work = trainable_copy(model)
        module = module_of(work)
        docs = find_documents(tokens.cpu().numpy())
        batches = self.batches(docs, params)
        shape = lora_shape(module, params)
        record_rng = self.record_generator(shape, params)
        if record_rng is not None and group.world > 1:
            raise ConfigError(
                "ttt-phased record mode is the record's single process: run it on one worker "
                "(canonical mode runs on any number)"
            )
        phases = phase_plan(docs, batches, phase_boundaries(len(docs), params), record_rng)
        scored: list[Scored] = []
        begin = 0
        if resume is not None:
            resume_model(module, resume)
            begin = resume_step(resume, len(batches))
            scored = list(resume.scored) if group.rank == 0 else []
            if record_rng is not None:  # the one stream, drawn as the skipped batches did
                for j in range(begin):
                    BatchedLoRA(shape, len(batches[j].docs)).reset(record_rng)
                    for _ in phases[j]:
                        BatchedLoRA(shape, params.lora_batch_docs).reset(record_rng)
        n = len(batches)
        k = begin
        while k < n:
            end = k + 1
            while end < min(k + group.world, n) and not phases[end - 1]:
                end += 1  # a round never runs past a phase
            units: list[Scored] = []
            mine = k + group.rank
            if mine < end:
                rng = record_rng if record_rng is not None else batch_generator(params, mine)
                units = self.score_batch(work, tokens, docs, batches[mine].docs, shape, rng, params)
            units = group.gather_units(units)
            at = 0
            for j in range(k, end):
                size = len(batches[j].docs) if group.rank == 0 else 0
                step_units, at = units[at : at + size], at + size
                scored.extend(step_units)
                for prefix in phases[j]:
                    self.global_sgd(work, tokens, docs, prefix, params, group)
                    if record_rng is not None:  # the record builds a fresh adapter here
                        BatchedLoRA(shape, params.lora_batch_docs).reset(record_rng)

                def snapshot(j: int = j, done: int = len(scored)) -> ChainState:
                    return ChainState(
                        j + 1,
                        {name: v.detach().clone() for name, v in module.state_dict().items()},
                        {},  # the phases' SGD starts fresh each time
                        scored[:done],
                    )

                yield ChainStep(j, n, step_units, None if j == n - 1 else snapshot)
            k = end

    def global_sgd(
        self,
        work: Scorer,
        tokens: Tensor,
        docs: Documents,
        prefix: list[int],
        params: EvalParams,
        group: Group | None = None,
    ) -> None:
        """One phase: fresh SGD over all parameters on the prefix documents' tokens."""
        module = module_of(work)  # type: ignore[arg-type]
        spans = [
            tokens[int(docs.starts[j]) : int(docs.starts[j] + docs.lengths[j])] for j in prefix
        ]
        if not spans:  # a zero boundary: the record trains on an empty stream, i.e. not
            return
        stream = torch.cat(spans)
        total = stream.numel() - 1
        size = params.global_chunk_tokens
        n_chunks = -(-total // size)
        train = list(module.parameters())
        optimizer = torch.optim.SGD(train, lr=params.global_lr, momentum=params.global_momentum)
        for ci in range(n_chunks - 1):  # the last chunk is never trained on
            lo, hi = ci * size, min((ci + 1) * size, total)
            if (hi - lo) // params.seq_len <= 0 or params.global_epochs <= 0:
                continue
            sgd_chunks(
                work,  # type: ignore[arg-type]
                train,
                optimizer,
                stream,
                lo,
                hi,
                seq_len=params.seq_len,
                batch_seqs=params.global_batch_seqs,
                epochs=params.global_epochs,
                clip=params.global_grad_clip,
                lr=cosine_lr(params.global_lr, ci, n_chunks),
                packed=params.global_doc_bounded,
                group=group,
            )
