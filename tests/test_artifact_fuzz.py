"""The reader against the hostile corpus and random mutations: every failure is the
declared ArtifactError with a one-line message, and nothing is ever executed."""

import lzma
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from artifact_corpus import Case, Payload, build_corpus, set_at, xz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golf.formats.artifact import encode_artifact, read_artifact
from golf.formats.quant import quantize_state_dict
from golf.models.gpt import GPT
from golf.models.registry import roles_for
from golf.spec.config import preset
from golf.spec.errors import ArtifactError

LIMIT = 4 * 2**20
MARKER = Path(tempfile.gettempdir()) / f"golf-corpus-marker-{os.getpid()}"


def _valid() -> bytes:
    config = preset("tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = GPT(config).state_dict()
    return encode_artifact(
        quantize_state_dict(state, roles_for(config), passthrough_max_numel=0),
        config,
        tokenizer_sha256="ab" * 32,
        vocab_size=config.vocab_size,
    )


VALID = _valid()
CASES = build_corpus(VALID, MARKER, LIMIT)


def _read(data: bytes) -> None:
    try:
        read_artifact(data, max_decompressed=LIMIT)
    except ArtifactError as e:
        message = str(e)
        assert message and "\n" not in message, repr(message)
        raise


def test_valid_artifact_reads() -> None:
    _read(VALID)


def test_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 25
    assert len({c.data for c in CASES}) == len(CASES)
    assert len({c.error for c in CASES}) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_raises_declared_error(case: Case) -> None:
    with pytest.raises(ArtifactError) as info:
        _read(case.data)
    assert type(info.value) is case.error, f"{case.name}: {info.value!r}"
    assert not MARKER.exists(), "a payload was executed"


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, value in edits:
        if not out:
            break
        i = pos % len(out)
        if kind == 0:
            out[i] = value
        elif kind == 1:
            del out[i : i + 1 + value % 8]
        else:
            out[i:i] = bytes([value]) * (1 + value % 4)
    return bytes(out)


_EDITS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2**31), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(edits=_EDITS)
def test_mutated_file_loads_or_raises_artifact_error(edits: list[tuple[int, int, int]]) -> None:
    try:
        _read(_mutate(VALID, edits))
    except ArtifactError:
        pass


PAYLOAD = lzma.decompress(VALID)
HEADER_END = 8 + int.from_bytes(PAYLOAD[:8], "little")


@_FUZZ
@given(edits=_EDITS, in_header=st.booleans())
def test_mutated_payload_loads_or_raises_artifact_error(
    edits: list[tuple[int, int, int]], in_header: bool
) -> None:
    """Mutations under the xz layer, to reach the header, metadata and value checks."""
    if in_header:
        data = _mutate(PAYLOAD[:HEADER_END], edits) + PAYLOAD[HEADER_END:]
    else:
        data = PAYLOAD[:HEADER_END] + _mutate(PAYLOAD[HEADER_END:], edits)
    try:
        _read(xz(data))
    except ArtifactError:
        pass


_DOC = Payload.decode(VALID)
_FIELDS = [
    *(["config", key] for key in _DOC.meta["config"]),
    *(["tokenizer", key] for key in _DOC.meta["tokenizer"]),
    *(["provenance", key] for key in _DOC.meta["provenance"]),
    ["quant", next(iter(_DOC.meta["quant"]))],
    ["code_bytes"],
    ["version"],
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([2**63, 512, "1", "gate", "int6", [0, 1]]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(_FIELDS), _JSON), min_size=1, max_size=3))
def test_mutated_metadata_loads_or_raises_artifact_error(
    edits: list[tuple[list[str], Any]],
) -> None:
    """Type-aware edits of the metadata JSON, to reach config validation and the model."""
    payload = _DOC
    for path, value in edits:
        payload = payload.with_meta(set_at(path, value))
    try:
        _read(payload.encode())
    except ArtifactError:
        pass


def test_payload_surgery_helpers_round_trip() -> None:
    assert Payload.decode(VALID).encode() != VALID  # re-encoded at a faster preset
    read_artifact(Payload.decode(VALID).encode())
