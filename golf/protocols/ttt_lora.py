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

Warm-start A (`lora_warm_start_a`, TTT_WARM_START_A=1 of 2026-04-23 on): a batch resets
`B` only; each adapter slot (row b of a batch) keeps the `A` it was trained to in the
batch before, so the batches form one chain (`chain`). `record`: the record's reusable
adapter of `lora_batch_docs` slots, drawn before the first batch, lends its `A` to every
full batch; a smaller batch builds its own (drawn from the stream, not kept), and every
phase of `ttt-phased` ends with a new reusable adapter. `canonical`: slot b's `A` is drawn
from a generator seeded by (ttt_seed, phase) at the chain's start (phase 0) and after
each phase, and row b of every batch, full or not, takes and returns slot b's `A`. On a
gang, rank r owns the fixed slots `slot_bounds(lora_batch_docs, world)[r]` and runs those
rows of every batch, as many AdamW steps as the whole batch takes.
A carries only what the documents of earlier batches taught it, and those were scored
before: the score stays first (the flip audit holds it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.models.lora import BatchedLoRA, LoRAShape
from golf.protocols.base import Scorer
from golf.protocols.chain import (
    ChainState,
    ChainStep,
    Checkpoint,
    collect,
    resume_lora,
    resume_model,
    resume_step,
)
from golf.protocols.collective import Group, Solo
from golf.protocols.scored import Scored
from golf.protocols.stream import ScoredProgress, StreamProtocol, module_of, trainable_copy
from golf.spec.documents import DocBatch, Documents, doc_batches, find_documents
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


WARM_A_KEY = 0x57A2
"""Spawn-key tag of the canonical warm-start draws (apart from the per-batch ones)."""


def warm_generator(params: EvalParams, phase: int) -> torch.Generator:
    """Canonical warm-start `A` of every slot at the chain's start (0) and after phase p (p)."""
    seq = np.random.SeedSequence(params.ttt_seed, spawn_key=(WARM_A_KEY, phase))
    return torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0]))


WarmA = dict[str, Tensor]
"""Warm-start `A` per LoRA key, [slots, rank, in]: what each adapter slot carries."""


def drawn_a(shape: LoRAShape, slots: int, rng: torch.Generator, device: torch.device) -> WarmA:
    """`A` of a fresh adapter of `slots` rows drawn from `rng` (the records' order)."""
    fresh = BatchedLoRA(shape, slots, device)
    fresh.reset(rng)
    return {k: v.detach() for k, v in fresh.a.items()}


def slot_bounds(slots: int, world: int) -> list[tuple[int, int]]:
    """Rank r's adapter slots [lo, hi) on a gang of `world`: contiguous, fixed per chain."""
    return [(slots * r // world, slots * (r + 1) // world) for r in range(world)]


def batch_steps(docs: Documents, members: np.ndarray, params: EvalParams) -> int:
    """AdamW steps a batch takes: one per chunk of its longest document but the last."""
    pred = docs.lengths[members] - 1
    return int((-(-pred // params.lora_chunk)).max()) - 1


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
        """Canonical ttt-lora without warm start: a batch's draws and documents are its own."""
        return params.ttt_mode == "canonical" and not params.lora_warm_start_a

    def chainable(self, params: EvalParams) -> bool:
        """Canonical with warm-start A: the batches chain through each slot's `A`."""
        return params.ttt_mode == "canonical" and params.lora_warm_start_a

    def batches(self, docs: Documents, params: EvalParams) -> list[DocBatch]:
        """The document batches in processing order."""
        return doc_batches(docs, params.lora_batch_docs)

    def phase_plan(
        self,
        docs: Documents,
        batches: list[DocBatch],
        params: EvalParams,
        record_rng: torch.Generator | None,
    ) -> list[list[list[int]]]:
        """Per batch, the prefixes of the global SGD phases that run after it: none here."""
        return [[] for _ in batches]

    def global_sgd(
        self,
        work: Scorer,
        tokens: Tensor,
        docs: Documents,
        prefix: list[int],
        params: EvalParams,
        group: Group | None = None,
    ) -> None:
        raise ConfigError(f"{self.name} has no global SGD phase")

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
        resume: ChainState | None = None,
        checkpoint: Checkpoint | None = None,
        every: int = 1,
        group: Group | None = None,
    ) -> list[Scored]:
        """All documents, batch by batch (`only`: those batch positions, canonical mode
        without warm start). With warm-start A, a `resume`, a `checkpoint` or a `group` the
        run is the chain (`chain`), from `resume` on, `checkpoint` getting its state every
        `every` batches."""
        params = self.resolve(params)
        chained = resume is not None or checkpoint is not None or group is not None
        if params.lora_warm_start_a or chained:
            if only is not None:
                raise ConfigError(
                    f"{self.name} run as one chain (warm-start A, a resume, checkpoints or "
                    "a group) cannot run a subset of its batches"
                )
            return self.score_chain(
                model, tokens, params, progress, resume, checkpoint, every, group
            )
        if only is not None and params.ttt_mode != "canonical":
            raise ConfigError("ttt-lora runs a subset of batches in canonical mode only")
        work = trainable_copy(model)
        docs = find_documents(tokens.cpu().numpy())
        batches = doc_batches(docs, params.lora_batch_docs)
        shape = lora_shape(module_of(work), params)
        record_rng = self.record_generator(shape, params)[0]
        scored: list[Scored] = []
        for k, batch in enumerate(batches):
            if only is not None and k not in only:
                continue
            rng = record_rng if record_rng is not None else batch_generator(params, k)
            lora = BatchedLoRA(shape, len(batch.docs), tokens.device)
            lora.reset(rng)
            units = self.score_batch(work, tokens, docs, batch.docs, lora, params)
            scored.extend(units)
            if progress is not None:
                progress(k, units)
        return scored

    def score_chain(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None,
        resume: ChainState | None,
        checkpoint: Checkpoint | None,
        every: int,
        group: Group | None,
    ) -> list[Scored]:
        """The whole chain (from `resume` on, with its units first); `checkpoint` gets the
        state every `every` batches. With a `group` of several ranks, rank 0 returns every
        unit and the others []."""

        def save(index: int) -> bool:
            return checkpoint is not None and every > 0 and (index + 1) % every == 0

        steps = self.chain(model, tokens, params, resume=resume, group=group, save=save)
        return collect(steps, resume, group, progress, checkpoint, every)

    def record_generator(
        self, shape: LoRAShape, params: EvalParams, device: torch.device | str = "cpu"
    ) -> tuple[torch.Generator | None, WarmA]:
        """Record mode: the record's global RNG stream after its first adapter (built
        before the first batch; unused unless warm start lends its `A`), and that `A`."""
        if params.ttt_mode != "record":
            return None, {}
        rng = torch.Generator().manual_seed(params.ttt_seed)
        first = drawn_a(shape, params.lora_batch_docs, rng, torch.device(device))
        return rng, first

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
        """The run batch by batch. With several ranks (canonical), the batches between two
        phases go round-robin, one per rank at a time (each batch is its own: its
        documents and its seeded draws), rank 0 gathering each round; with warm-start A
        every batch is shared out by slots instead (each rank carries its slots' `A`). The
        phases' global SGD runs on every rank (`sgd_chunks`: rows split when unpacked).

        Checkpoints: with warm-start A on several ranks, rank 0 gathers every slot's `A`
        after the steps rank 0's `save(step)` asks for (its answer shared with the gang;
        None: none), and only those steps have a snapshot."""
        params = self.resolve(params)
        group = group if group is not None else Solo()
        work = trainable_copy(model)
        module = module_of(work)
        docs = find_documents(tokens.cpu().numpy())
        batches = self.batches(docs, params)
        shape = lora_shape(module, params)
        device = tokens.device
        slots = params.lora_batch_docs
        record_rng, first_a = self.record_generator(shape, params, device)
        if record_rng is not None and group.world > 1:
            raise ConfigError(
                f"{self.name} record mode is the record's single process: run it on one worker "
                "(canonical mode runs on any number)"
            )
        warm_start = params.lora_warm_start_a
        own = slot_bounds(slots, group.world)
        warm: WarmA = {}
        if warm_start:
            warm = (
                first_a
                if record_rng is not None
                else drawn_a(shape, slots, warm_generator(params, 0), device)
            )
        phases = self.phase_plan(docs, batches, params, record_rng)
        scored: list[Scored] = []
        begin = phases_done = 0
        if resume is not None:
            resume_model(module, resume)
            begin = resume_step(resume, len(batches))
            scored = list(resume.scored) if group.rank == 0 else []
            phases_done = sum(len(phases[j]) for j in range(begin))
            if record_rng is not None:  # the one stream, drawn as the skipped batches did
                for j in range(begin):
                    if not (warm_start and len(batches[j].docs) == slots):
                        BatchedLoRA(shape, len(batches[j].docs)).reset(record_rng)
                    for _ in phases[j]:
                        BatchedLoRA(shape, slots).reset(record_rng)
            if warm_start:
                warm = resume_lora(resume, warm)
        n = len(batches)
        k = begin
        while k < n:
            end = k + 1
            while not warm_start and end < min(k + group.world, n) and not phases[end - 1]:
                end += 1  # a round never runs past a phase
            units: list[Scored] = []
            mine = k + group.rank
            if warm_start:
                units = self.warm_batch(
                    work, tokens, docs, batches[k].docs, shape, warm, record_rng,
                    own[group.rank], params,
                )  # fmt: skip
            elif mine < end:
                rng = record_rng if record_rng is not None else batch_generator(params, mine)
                lora = BatchedLoRA(shape, len(batches[mine].docs), device)
                lora.reset(rng)
                units = self.score_batch(work, tokens, docs, batches[mine].docs, lora, params)
            units = group.gather_units(units)
            at = 0
            for j in range(k, end):
                size = len(batches[j].docs) if group.rank == 0 else 0
                step_units, at = units[at : at + size], at + size
                scored.extend(step_units)
                for prefix in phases[j]:
                    self.global_sgd(work, tokens, docs, prefix, params, group)
                    phases_done += 1
                    if record_rng is not None:  # the record builds a fresh adapter here
                        fresh = drawn_a(shape, slots, record_rng, device)
                        warm = fresh if warm_start else warm
                    elif warm_start:
                        warm = drawn_a(shape, slots, warm_generator(params, phases_done), device)
                saved = j < n - 1
                if warm_start and group.world > 1:
                    saved = saved and group.agree(save is not None and save(j))
                    if saved:  # rank 0's checkpoint holds every slot's A
                        group.gather_rows(warm, own)

                def snapshot(j: int = j, done: int = len(scored), warm: WarmA = warm) -> ChainState:
                    return ChainState(
                        j + 1,
                        {name: v.detach().clone() for name, v in module.state_dict().items()},
                        {},  # the LoRA's AdamW and the phases' SGD start fresh each time
                        scored[:done],
                        {key: a.clone() for key, a in warm.items()},
                    )

                yield ChainStep(j, n, step_units, snapshot if saved else None)
            k = end

    def warm_batch(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        members: np.ndarray,
        shape: LoRAShape,
        warm: WarmA,
        record_rng: torch.Generator | None,
        own: tuple[int, int],
        params: EvalParams,
    ) -> list[Scored]:
        """One batch with warm-start A, the rows of slots `own` (all of them at world 1):
        row b takes slot b's `A` and hands it back trained (record mode: a batch smaller
        than the slots is the record's fresh adapter of its own, drawn and dropped)."""
        n = len(members)
        if record_rng is not None and n != params.lora_batch_docs:
            lora = BatchedLoRA(shape, n, tokens.device)
            lora.reset(record_rng)
            return self.score_batch(model, tokens, docs, members, lora, params)
        lo, hi = own[0], min(own[1], n)
        if hi <= lo:
            return []
        lora = BatchedLoRA(shape, hi - lo, tokens.device)
        with torch.no_grad():
            for key, a in lora.a.items():
                a.copy_(warm[key][lo:hi])
        steps = batch_steps(docs, members, params)
        units = self.score_batch(model, tokens, docs, members[lo:hi], lora, params, steps)
        with torch.no_grad():
            for key, a in lora.a.items():
                warm[key][lo:hi] = a.detach()
        return units

    def score_batch(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        members: np.ndarray,
        lora: BatchedLoRA,
        params: EvalParams,
        steps: int | None = None,
    ) -> list[Scored]:
        """Score documents `members` with `lora` (B zero; row b's `A` for document b),
        which leaves it trained (what warm start carries on). `steps`: the AdamW steps of
        the whole batch these rows belong to (default: theirs), which a finished row
        still takes with a zero gradient."""
        steps = batch_steps(docs, members, params) if steps is None else steps
        if params.reference:
            return [
                self.reference_document(model, tokens, docs, int(j), lora, b, params, steps)
                for b, j in enumerate(members.tolist())
            ]
        return self._batched(model, tokens, docs, members, lora, params, steps)

    def _batched(
        self,
        model: Scorer,
        tokens: Tensor,
        docs: Documents,
        members: np.ndarray,
        lora: BatchedLoRA,
        params: EvalParams,
        steps: int,
    ) -> list[Scored]:
        """All documents of the batch at once, chunk by chunk (the records' loop), then
        (warm start, rows of a batch shared out) zero-gradient steps up to the batch's."""
        device = tokens.device
        optimizer = adamw(lora, params)
        starts = docs.starts[members]
        pred = docs.lengths[members] - 1
        cs, seq_len = params.lora_chunk, params.seq_len
        n_chunks = -(-pred // cs)
        bsz = len(members)
        nll_parts: list[list[np.ndarray]] = [[] for _ in range(bsz)]
        taken = 0
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
                taken += 1
        if params.lora_warm_start_a:
            for _ in range(taken, steps):
                for p in lora.parameters():
                    p.grad = torch.zeros_like(p)
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
        batch_steps: int = 0,
    ) -> Scored:
        """The literal algorithm for one document: its own adapter (row `row` of the
        batch's draws) and optimizer, full logits over each window.

        With warm-start A the trained `A` goes back to row `row`, as the batch leaves it:
        the records step every row each of the batch's `batch_steps` steps, so a finished
        document's row takes zero-gradient AdamW steps (its weight decay) until the
        batch's longest document is done."""
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
        if params.lora_warm_start_a:
            for _ in range(max(0, n_chunks - 1), batch_steps):
                for p in own.parameters():
                    p.grad = torch.zeros_like(p)
                optimizer.step()
            with torch.no_grad():
                for key in own.a:
                    lora.a[key][row : row + 1] = own.a[key]
        return Scored(j, start + np.arange(pred, dtype=np.int64), np.concatenate(parts))
