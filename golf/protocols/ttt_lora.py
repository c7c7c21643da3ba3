"""`ttt-lora`: per-document score-first LoRA (the records' `eval_val_ttt_lora`).

Documents (golf.spec.documents) are sorted by length, cut into batches of
`lora_batch_docs`, and the batches run longest first. Per batch a fresh LoRA per document
(`A` uniform, `B` zero; rank `lora_rank` on the sites of `lora_sites` and on the head) and
a fresh AdamW. Each document is read in chunks of `lora_chunk` targets: the chunk's
targets are scored from a window of at most L tokens that ends at the chunk and stays in
the document, then one AdamW step on the chunk's mean loss (none after the document's
last chunk). Base weights stay frozen; nothing carries from one batch to the next, so a
batch's scores depend on its documents and its `A` draws only.

`A` draws: `canonical` seeds a generator from (ttt_seed, batch index), so a batch scores
the same on any worker; `record` draws from one generator seeded with ttt_seed in the
record's order (one adapter built before the first batch, then one draw per batch), as
the record's single process does. `reference=True` runs each document alone, literally.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.models.lora import BatchedLoRA, LoRAShape
from golf.protocols.base import Scorer
from golf.protocols.scored import Scored
from golf.protocols.stream import ScoredProgress, StreamProtocol, module_of, trainable_copy
from golf.spec.documents import Documents, doc_batches, find_documents
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import StreamOutline


def lora_shape(module: nn.Module, params: EvalParams) -> LoRAShape:
    """Adapter sizes of a model: one slot per layer the forward runs."""
    cfg = module.config  # type: ignore[attr-defined]
    recur = getattr(module, "recur_active", True)
    layers = cfg.num_virtual_layers if recur else cfg.num_layers
    sites = tuple(s for s in params.lora_sites.split(",") if s)
    return LoRAShape(
        layers=layers,
        model_dim=cfg.model_dim,
        kv_dim=cfg.kv_dim,
        vocab_size=cfg.vocab_size,
        rank=params.lora_rank,
        head_dim=int(module.head_weight.shape[1]),  # type: ignore[attr-defined]
        sites=sites,
        alpha=params.lora_alpha,
    )


def batch_generator(params: EvalParams, order: int) -> torch.Generator:
    """Canonical `A` draws of the batch at processing position `order`."""
    seed = int(np.random.SeedSequence([params.ttt_seed, order]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def chunk_window(ci: int, pred_len: int, chunk: int, seq_len: int) -> tuple[int, int, int, int]:
    """(window start, window length, chunk offset in the window, chunk length) of the
    ci-th chunk of a document with `pred_len` targets, in the document's coordinates."""
    n_chunks = -(-pred_len // chunk)
    end = pred_len if ci == n_chunks - 1 else (ci + 1) * chunk
    start = max(0, end - seq_len)
    return start, end - start, ci * chunk - start, end - ci * chunk


def adamw(lora: nn.Module, params: EvalParams) -> torch.optim.Optimizer:
    device = next(lora.parameters()).device
    return torch.optim.AdamW(
        lora.parameters(),
        lr=params.lora_lr,
        betas=(params.lora_beta1, params.lora_beta2),
        eps=params.lora_eps,
        weight_decay=params.lora_weight_decay,
        fused=device.type in ("cuda", "cpu"),
    )


class TTTLoRA(StreamProtocol):
    """Per-document LoRA, scored chunk by chunk before each step."""

    name = "ttt-lora"
    unit_name = "document"
    step_name = "document batch"
    doc_bounded = True  # windows never leave their document

    def default_stride(self, seq_len: int) -> int:
        return min(64, seq_len)

    def cost_factor(self, params: EvalParams) -> float:
        """A window of up to L tokens per chunk of `lora_chunk` targets, forward and
        backward (~3×), against the sliding window's L / stride."""
        stride = params.stride or self.default_stride(params.seq_len)
        return 3.0 * stride / params.lora_chunk

    def shardable(self, params: EvalParams) -> bool:
        """Canonical ttt-lora: a batch's draws and documents are its own."""
        return params.ttt_mode == "canonical"

    def steps(self, n_tokens: int, tokens: np.ndarray | None, params: EvalParams) -> int:
        if tokens is None:
            return 1
        return len(doc_batches(find_documents(tokens), params.lora_batch_docs))

    def outline(self, tokens: np.ndarray, params: EvalParams) -> StreamOutline:
        """Documents per batch, longest batch first; max_windows does not cut documents."""
        docs = find_documents(tokens)
        batches = doc_batches(docs, params.lora_batch_docs)
        sizes = tuple(len(b.docs) for b in batches)
        return StreamOutline(sizes, int(docs.targets.sum()), len(docs))

    def score(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None = None,
        *,
        only: Sequence[int] | None = None,
    ) -> list[Scored]:
        """All documents, batch by batch (`only`: those batch positions, canonical mode)."""
        params = self.resolve(params)
        if only is not None and params.ttt_mode != "canonical":
            raise ConfigError("ttt-lora runs a subset of batches in canonical mode only")
        work = trainable_copy(model)
        docs = find_documents(tokens.cpu().numpy())
        batches = doc_batches(docs, params.lora_batch_docs)
        shape = lora_shape(module_of(work), params)
        record_rng = self.record_generator(shape, params)
        scored: list[Scored] = []
        for k, batch in enumerate(batches):
            if only is not None and k not in only:
                continue
            rng = record_rng if record_rng is not None else batch_generator(params, k)
            units = self.score_batch(work, tokens, docs, batch.docs, shape, rng, params)
            scored.extend(units)
            if progress is not None:
                progress(k, units)
        return scored

    def record_generator(self, shape: LoRAShape, params: EvalParams) -> torch.Generator | None:
        """Record mode: the record's global RNG stream after its first (unused) adapter."""
        if params.ttt_mode != "record":
            return None
        rng = torch.Generator().manual_seed(params.ttt_seed)
        BatchedLoRA(shape, params.lora_batch_docs).reset(rng)
        return rng

    def score_batch(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        members: np.ndarray,
        shape: LoRAShape,
        rng: torch.Generator,
        params: EvalParams,
    ) -> list[Scored]:
        """Score one batch of documents (fresh adapters drawn from `rng`)."""
        lora = BatchedLoRA(shape, len(members), tokens.device)
        lora.reset(rng)
        if params.reference:
            return [
                self.reference_document(model, tokens, docs, int(j), lora, b, params)
                for b, j in enumerate(members.tolist())
            ]
        return self._batched(model, tokens, docs, members, lora, params)

    def _batched(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        members: np.ndarray,
        lora: BatchedLoRA,
        params: EvalParams,
    ) -> list[Scored]:
        """All documents of the batch at once, chunk by chunk (the records' loop)."""
        device = tokens.device
        optimizer = adamw(lora, params)
        starts = docs.starts[members]
        pred = docs.lengths[members] - 1
        cs, seq_len = params.lora_chunk, params.seq_len
        n_chunks = -(-pred // cs)
        bsz = len(members)
        nll_parts: list[list[np.ndarray]] = [[] for _ in range(bsz)]
        for ci in range(int(n_chunks.max())):
            active = ci < n_chunks
            train = ci < n_chunks - 1
            width = min((ci + 1) * cs, seq_len)
            x = torch.zeros(bsz, width, dtype=torch.long, device=device)
            y = torch.zeros_like(x)
            rows = np.zeros((bsz, cs), dtype=np.int64)
            spans: list[tuple[int, int]] = []
            for b in range(bsz):
                if not active[b]:
                    spans.append((0, 0))
                    continue
                w0, wl, off, cl = chunk_window(ci, int(pred[b]), cs, seq_len)
                at = int(starts[b]) + w0
                x[b, :wl] = tokens[at : at + wl]
                y[b, :wl] = tokens[at + 1 : at + wl + 1]
                rows[b, :cl] = np.arange(off, off + cl)
                rows[b, cl:] = off
                spans.append((off, cl))
            row_t = torch.from_numpy(rows).to(device)
            with torch.enable_grad():
                hidden = model.forward_hidden(x, row_t, adapter=lora)  # type: ignore[call-arg]
                logits = model.logits(hidden, adapter=lora)  # type: ignore[call-arg]
                ptl = F.cross_entropy(
                    logits.float().flatten(0, 1), y.gather(1, row_t).flatten(), reduction="none"
                ).view(bsz, cs)
            host = ptl.detach().double().cpu().numpy()
            for b, (_, cl) in enumerate(spans):
                if cl:
                    nll_parts[b].append(host[b, :cl])
            if train.any():
                mask = torch.from_numpy(train.astype(np.float32)).to(device)
                optimizer.zero_grad(set_to_none=True)
                (ptl.mean(dim=1) * mask).sum().backward()
                optimizer.step()
        return [
            Scored(
                int(j),
                int(starts[b]) + np.arange(int(pred[b]), dtype=np.int64),
                np.concatenate(nll_parts[b]),
            )
            for b, j in enumerate(members.tolist())
        ]

    def reference_document(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        j: int,
        lora: BatchedLoRA,
        row: int,
        params: EvalParams,
    ) -> Scored:
        """The literal algorithm for one document: its own adapter (row `row` of the
        batch's draws) and optimizer, full logits over each window."""
        own = BatchedLoRA(lora.shape, 1, tokens.device)
        with torch.no_grad():
            for key in own.a:
                own.a[key].copy_(lora.a[key][row : row + 1])
        optimizer = adamw(own, params)
        start, pred = int(docs.starts[j]), int(docs.lengths[j]) - 1
        cs = params.lora_chunk
        n_chunks = -(-pred // cs)
        parts = []
        for ci in range(n_chunks):
            w0, wl, off, cl = chunk_window(ci, pred, cs, params.seq_len)
            x = tokens[start + w0 : start + w0 + wl][None]
            y = tokens[start + w0 + 1 : start + w0 + wl + 1]
            with torch.enable_grad():
                hidden = model.forward_hidden(x, adapter=own)  # type: ignore[call-arg]
                nll = F.cross_entropy(
                    model.logits(hidden, adapter=own)[0].float(), y, reduction="none"
                )  # type: ignore[call-arg]
            parts.append(nll[off : off + cl].detach().double().cpu().numpy())
            if ci < n_chunks - 1:
                optimizer.zero_grad(set_to_none=True)
                nll[off : off + cl].mean().backward()
                optimizer.step()
        return Scored(j, start + np.arange(pred, dtype=np.int64), np.concatenate(parts))
