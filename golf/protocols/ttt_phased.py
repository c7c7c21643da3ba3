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
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from golf.models.lora import BatchedLoRA
from golf.protocols.base import Scorer
from golf.protocols.stream import (
    Scored,
    ScoredProgress,
    cosine_lr,
    module_of,
    sgd_chunks,
    trainable_copy,
)
from golf.protocols.ttt_lora import TTTLoRA, batch_generator, lora_shape
from golf.spec.documents import DocBatch, Documents, doc_batches, find_documents
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams


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


class TTTPhased(TTTLoRA):
    """LoRA per document, with global SGD phases over the scored prefix."""

    name = "ttt-phased"

    def cost_factor(self, params: EvalParams) -> float:
        return super().cost_factor(params) + 0.5

    def shardable(self, params: EvalParams) -> bool:
        return False  # the phases chain the batches

    def score(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None = None,
        *,
        only: object = None,
    ) -> list[Scored]:
        params = self.resolve(params)
        if only is not None:
            raise ConfigError("ttt-phased is one chain: it cannot run a subset of its batches")
        work = trainable_copy(model)
        docs = find_documents(tokens.cpu().numpy())
        batches = doc_batches(docs, params.lora_batch_docs)
        bounds = phase_boundaries(len(docs), params)
        rank = np.empty(len(docs), dtype=np.int64)
        rank[np.argsort(docs.lengths, kind="stable")] = np.arange(len(docs))
        shape = lora_shape(module_of(work), params)
        record_rng = self.record_generator(shape, params)
        if record_rng is None:
            batches = canonical_batches(batches, bounds, params.lora_batch_docs)
        scored: list[Scored] = []
        done: list[int] = []
        phase = 0
        for k, batch in enumerate(batches):
            rng = record_rng if record_rng is not None else batch_generator(params, k)
            units = self.score_batch(work, tokens, docs, batch.docs, shape, rng, params)
            scored.extend(units)
            if phase < len(bounds):
                done.extend(batch.docs.tolist())
            # record: at most one phase per batch end, as the record checks; canonical:
            # every boundary this batch ends on (equal boundaries of a tiny prefix).
            while phase < len(bounds) and len(done) >= bounds[phase]:
                prefix = sorted(done, key=lambda j: rank[j])[: bounds[phase]]
                self.global_sgd(work, tokens, docs, prefix, params)
                phase += 1
                if record_rng is not None:  # the record builds a fresh adapter here
                    BatchedLoRA(shape, params.lora_batch_docs).reset(record_rng)
                    break
            if progress is not None:
                progress(k, units)
        return scored

    def global_sgd(
        self, work: Scorer, tokens: Tensor, docs: Documents, prefix: list[int], params: EvalParams
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
            )
