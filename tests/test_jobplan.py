"""The pure job planner that the router and the scheduler share."""

import numpy as np
import pytest

from golf.spec.documents import BOS_ID, find_documents
from golf.spec.errors import ConfigError
from golf.spec.jobplan import ProtocolPlan, plan_job, plan_protocol
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol

N_TOKENS = 10_001  # N + 1 val tokens


def test_protocol_plan_matches_the_window_plan():
    params = EvalParams(seq_len=256, batch_windows=8)
    for name in ("plain", "sliding", "slot", "slot-causal"):
        planned = plan_protocol(name, N_TOKENS, params)
        window_plan = get_protocol(name).plan(N_TOKENS - 1, params)
        assert planned.params == get_protocol(name).resolve(params)
        assert planned.windows == len(window_plan)
        assert planned.scored_tokens == window_plan.scored_tokens == N_TOKENS - 1
        assert planned.batches == window_plan.n_batches(8)


@pytest.mark.parametrize("per_shard", [1, 2, 3, 7, 1000])
def test_shards_cover_every_batch_and_window_once(per_shard):
    params = EvalParams(seq_len=128, stride=32, batch_windows=4)
    job = plan_job(N_TOKENS, ["sliding", "plain"], params, per_shard)
    assert [p.protocol for p in job.protocols] == ["sliding", "plain"]
    for planned in job.protocols:
        shards = [s for s in job.shards if s.protocol == planned.protocol]
        assert [s.shard for s in shards] == list(range(len(shards)))
        assert shards[0].batch_lo == 0 and shards[-1].batch_hi == planned.batches
        assert all(a.batch_hi == b.batch_lo for a, b in zip(shards, shards[1:], strict=False))
        assert all(s.batch_hi - s.batch_lo <= per_shard for s in shards)
        assert sum(s.windows for s in shards) == planned.windows
    assert job.windows == sum(p.windows for p in job.protocols)


def test_plans_round_trip_through_json():
    job = plan_job(N_TOKENS, ["slot"], EvalParams(seq_len=128), 2)
    assert type(job).model_validate_json(job.model_dump_json()) == job


@pytest.mark.parametrize(
    ("protocols", "fragment"),
    [(["slot", "slot"], "name each protocol once"), (["nope"], "unknown protocol")],
)
def test_bad_protocol_lists_are_config_errors(protocols, fragment):
    with pytest.raises(ConfigError, match=fragment):
        plan_job(N_TOKENS, protocols, EvalParams(seq_len=128), 2)


def test_a_plan_knows_whether_max_windows_cut_it() -> None:
    """Partial is decided from the counts: the uncut plan's windows are kept beside."""
    n_tokens = 1 + 10 * 64  # 10 windows of 64 at stride 64
    params = EvalParams(seq_len=64, stride=64)
    whole = plan_protocol("sliding", n_tokens, params)
    assert (whole.windows, whole.windows_total, whole.partial) == (10, 10, False)
    past_the_end = plan_protocol(
        "sliding", n_tokens, params.model_copy(update={"max_windows": 10**9})
    )
    assert (past_the_end.windows, past_the_end.partial) == (10, False)
    cut = plan_protocol("sliding", n_tokens, params.model_copy(update={"max_windows": 4}))
    assert (cut.windows, cut.windows_total, cut.partial) == (4, 10, True)
    assert (
        ProtocolPlan.model_validate(cut.model_dump() | {"windows_total": None}).partial is None
    )  # a plan stored before the count was kept: unknown


def doc_stream(lengths: list[int], lead: int = 3) -> np.ndarray:
    """A token stream of `lead` tokens before the first BOS, then documents of `lengths`
    tokens (BOS first; no other token is BOS), plus the final BOS-free token."""
    parts = [np.full(lead, 7)]
    parts += [np.concatenate(([BOS_ID], np.full(n - 1, 5))) for n in lengths]
    return np.concatenate(parts)


def test_ttt_lora_is_planned_by_document_batch():
    lengths = [9, 40, 3, 17, 17, 25, 2, 60, 11, 8]
    tokens = doc_stream(lengths)
    params = EvalParams(seq_len=32, lora_batch_docs=3, lora_chunk=8)
    planned = plan_protocol("ttt-lora", tokens, params)
    protocol = get_protocol("ttt-lora")
    # one record per document; a document predicts the next one's BOS, the last one
    # runs to the end of the stream: every token after the first BOS is a target once
    assert planned.windows == len(find_documents(tokens)) == 10
    assert planned.scored_tokens == sum(lengths) - 1
    # the protocol's own batch count (progress steps), longest documents first: cut
    # from the shortest up, the longest document is the odd one out and runs first
    assert planned.batches == protocol.steps(len(tokens), tokens, params) == 4
    assert planned.batch_sizes == (1, 3, 3, 3)
    job = plan_job(tokens, ["ttt-lora", "sliding"], params, 3)
    lora = [s for s in job.shards if s.protocol == "ttt-lora"]
    assert [(s.batch_lo, s.batch_hi, s.windows) for s in lora] == [(0, 2, 4), (2, 4, 6)]
    # priced as sliding over the same targets times the protocol's factor (3·S / chunk)
    stride = planned.params.stride
    assert stride == 32
    assert planned.cost == pytest.approx(planned.scored_tokens / stride * 32 * 3 * stride / 8)


def test_chains_are_one_shard_for_a_gang_of_their_steps():
    lengths = [300, 90, 41, 400, 120, 75, 260, 33]
    tokens = doc_stream(lengths)
    params = EvalParams(
        seq_len=32, stride=16, ttt_chunk_tokens=128, lora_batch_docs=2, phased_prefix_docs=5
    )
    job = plan_job(tokens, ["ttt", "ttt-phased", "ttt-lora"], params, 1, chain_workers=2)
    ttt, phased, lora = job.protocols
    assert (ttt.chain_workers, phased.chain_workers, lora.chain_workers) == (2, 2, 0)
    assert (ttt.chain, phased.chain, lora.chain) == (True, True, False)
    by_protocol = {
        p.protocol: [s for s in job.shards if s.protocol == p.protocol] for p in job.protocols
    }
    # a chain is one shard of every step, whatever batches_per_shard says
    for chain in (ttt, phased):
        (shard,) = by_protocol[chain.protocol]
        assert (shard.batch_lo, shard.batch_hi, shard.windows) == (0, chain.batches, chain.windows)
    assert len(by_protocol["ttt-lora"]) == lora.batches > 1
    # ttt's steps are its chunks, each holding the windows whose first target it holds
    protocol = get_protocol("ttt")
    resolved = protocol.resolve(params)
    windows = protocol.plan(len(tokens) - 1, resolved)
    n_chunks, chunk_of = protocol.chunk_of(windows, resolved)
    assert ttt.batches == n_chunks == -(-(len(tokens) - 1) // 128)
    assert list(ttt.batch_sizes) == np.bincount(chunk_of, minlength=n_chunks).tolist()
    assert ttt.windows == len(windows) and ttt.scored_tokens == len(tokens) - 1
    # ttt-phased's steps are its canonical batches: cut at every phase boundary
    assert phased.windows == len(lengths) and sum(phased.batch_sizes) == len(lengths)
    assert len(phased.batch_sizes) > lora.batches  # the boundaries cut batches in two


@pytest.mark.parametrize("name", ["ttt-lora", "ttt-phased"])
def test_record_modes_are_refused(name):
    params = EvalParams(seq_len=32, ttt_mode="record")
    with pytest.raises(ConfigError, match="the service runs ttt_mode=canonical"):
        plan_job(doc_stream([9, 40, 3]), [name], params, 2)


def test_a_gang_needs_a_worker():
    with pytest.raises(ConfigError, match="chain_workers must be ≥ 1"):
        plan_job(doc_stream([9, 40, 3]), ["ttt"], EvalParams(seq_len=32), 2, chain_workers=0)


def test_ttt_lora_needs_the_tokens_not_their_count():
    with pytest.raises(ConfigError, match="planned from the val tokens"):
        plan_protocol("ttt-lora", N_TOKENS, EvalParams(seq_len=32))
