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
runs equal world 1 to the bit (docs/TTT.md). With warm-start A (`lora_warm_start_a`) the
adapter slots' `A` carry from batch to batch within a phase and are drawn afresh after
each phase; a gang shares each batch out by slots instead (`TTTLoRA.chain`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from golf.protocols.base import Scorer
from golf.protocols.chain import ChainState, Checkpoint
from golf.protocols.collective import Group
from golf.protocols.scored import Scored
from golf.protocols.stream import ScoredProgress, cosine_lr, module_of, sgd_chunks
from golf.protocols.ttt_lora import TTTLoRA
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

    def phase_plan(
        self,
        docs: Documents,
        batches: list[DocBatch],
        params: EvalParams,
        record_rng: torch.Generator | None,
    ) -> list[list[list[int]]]:
        return phase_plan(docs, batches, phase_boundaries(len(docs), params), record_rng)

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
        """The whole chain (`TTTLoRA.score_chain`)."""
        if only is not None:
            raise ConfigError("ttt-phased is one chain: it cannot run a subset of its batches")
        params = self.resolve(params)
        return self.score_chain(model, tokens, params, progress, resume, checkpoint, every, group)

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
