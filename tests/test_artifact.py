import hashlib
import json
import lzma
from pathlib import Path

import pytest
import torch
from artifact_corpus import Payload, set_at

from golf.formats.artifact import (
    BUDGET_BYTES,
    BadMetadata,
    DecompressionBomb,
    DtypeMismatch,
    MissingTensor,
    NotAnArtifact,
    OutOfRange,
    Provenance,
    TooLarge,
    UnexpectedTensor,
    UnknownArch,
    VocabMismatch,
    encode_artifact,
    load_model,
    pack,
    random_artifact,
    read_artifact,
    write_artifact,
)
from golf.formats.quant import QTensor, Scheme, dequantize_state_dict, quantize_state_dict
from golf.models.gpt import GPT
from golf.models.registry import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    UnknownArchitecture,
    expected_shapes,
    model_class,
    roles_for,
)
from golf.models.roles import Role, role
from golf.spec.config import ModelConfig, preset

SHA = hashlib.sha256(b"tokenizer").hexdigest()


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return preset("tiny")


@pytest.fixture(scope="module")
def quantized(config: ModelConfig) -> dict[str, QTensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        state = GPT(config).state_dict()
    # Threshold 0 so the tiny model exercises all three schemes.
    return quantize_state_dict(state, roles_for(config), passthrough_max_numel=0)


def _encode(config: ModelConfig, tensors: dict[str, QTensor], **kw: object) -> bytes:
    args: dict = {"tokenizer_sha256": SHA, "vocab_size": config.vocab_size} | kw
    return encode_artifact(tensors, config, **args)


def test_round_trip_equals_quantize_then_dequantize(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    art = read_artifact(_encode(config, quantized))
    assert set(art.schemes.values()) == {Scheme.INT6, Scheme.INT8, Scheme.FP16}
    assert art.schemes == {n: qt.scheme for n, qt in quantized.items()}
    assert art.config == config
    expected = dequantize_state_dict(quantized)
    got = art.dequantize()
    assert set(got) == set(expected) == set(expected_shapes(config))
    for name, t in expected.items():
        assert torch.equal(got[name], t), name


def test_encoding_is_deterministic(config: ModelConfig, quantized: dict[str, QTensor]) -> None:
    assert _encode(config, quantized) == _encode(config, quantized)


def test_file_round_trip_and_identity(
    tmp_path: Path, config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    path = tmp_path / "sub" / "m.golf"
    provenance = Provenance(
        seeds=(1, 2),
        ttt_data_source="train",
        ttt_epochs=3,
        gptq_calibration_source="val",
        notes={"run": "x"},
    )
    n = write_artifact(
        path,
        quantized,
        config,
        tokenizer_sha256=SHA,
        vocab_size=config.vocab_size,
        provenance=provenance,
        code_bytes=1234,
    )
    data = path.read_bytes()
    assert n == len(data)
    art = read_artifact(path)
    assert art.sha256 == hashlib.sha256(data).hexdigest() == read_artifact(data).sha256
    assert art.n_bytes == n
    assert art.metadata.provenance == provenance
    assert art.metadata.code_bytes == 1234
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left behind


def test_tiny_artifact_loads_into_gpt_and_runs(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    art = read_artifact(_encode(config, quantized))
    model = load_model(art)
    for name, t in model.state_dict().items():
        assert torch.equal(t.float(), art.dequantize()[name]), name
    ids = torch.randint(0, config.vocab_size, (2, 16))
    with torch.no_grad():
        logits = model.logits(model.forward_hidden(ids))
    assert logits.shape == (2, 16, config.vocab_size)
    assert bool(torch.isfinite(logits).all())


def test_budget_verdict(config: ModelConfig, quantized: dict[str, QTensor]) -> None:
    # The declared code bytes live in the metadata, so the file size moves with them.
    code = BUDGET_BYTES
    for _ in range(10):
        art = read_artifact(_encode(config, quantized, code_bytes=code))
        if art.n_bytes + code == BUDGET_BYTES:
            break
        code = BUDGET_BYTES - art.n_bytes
    at_limit = art.summary().model_dump(mode="json")
    assert at_limit["total_bytes"] == BUDGET_BYTES
    assert at_limit["verdict"] == "fits" and at_limit["headroom_bytes"] == 0
    over = (
        read_artifact(_encode(config, quantized, code_bytes=BUDGET_BYTES))
        .summary()
        .model_dump(mode="json")
    )
    assert over["verdict"] == "over budget"
    assert over["headroom_bytes"] == -over["artifact_bytes"]


def test_summary_is_json(config: ModelConfig, quantized: dict[str, QTensor]) -> None:
    art = read_artifact(_encode(config, quantized, code_bytes=500))
    summary = json.loads(json.dumps(art.summary().model_dump(mode="json")))
    assert ModelConfig.parse(summary["config"]) == config
    assert summary["tensors"] == len(expected_shapes(config))
    assert sum(summary["schemes"].values()) == summary["tensors"]
    assert summary["artifact_bytes"] == art.n_bytes
    assert summary["code_bytes"] == 500
    assert summary["total_bytes"] == art.n_bytes + 500
    assert summary["budget_bytes"] == BUDGET_BYTES
    assert summary["tokenizer_sha256"] == SHA
    assert summary["vocab_size"] == config.vocab_size
    assert summary["sha256"] == art.sha256
    assert summary["provenance"]["trainer_version"].startswith("golf-eval")


def test_random_artifact_is_seeded(tmp_path: Path, config: ModelConfig) -> None:
    a, b, c = tmp_path / "a.golf", tmp_path / "b.golf", tmp_path / "c.golf"
    random_artifact(config, SHA, config.vocab_size, a, seed=3)
    random_artifact(config, SHA, config.vocab_size, b, seed=3)
    random_artifact(config, SHA, config.vocab_size, c, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    art = read_artifact(a)
    assert art.metadata.provenance.seeds == (3,)
    load_model(art)


def test_pack_uses_the_reference_rule(tmp_path: Path, config: ModelConfig) -> None:
    state = GPT(config).state_dict()
    pack(tmp_path / "m.golf", state, config, tokenizer_sha256=SHA, vocab_size=config.vocab_size)
    art = read_artifact(tmp_path / "m.golf")
    assert all(s is Scheme.FP16 for n, s in art.schemes.items() if state[n].numel() <= 65_536)


def test_writer_rejects_what_the_reader_would(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    name = next(n for n, qt in quantized.items() if qt.scheme is Scheme.INT6)
    qt = quantized[name]
    assert qt.scale is not None
    bad_q = qt.values.clone()
    bad_q.view(-1)[0] = 40
    with pytest.raises(OutOfRange, match=name):
        _encode(config, quantized | {name: QTensor(Scheme.INT6, bad_q, qt.scale)})
    with pytest.raises(DtypeMismatch, match=name):
        _encode(config, quantized | {name: QTensor(Scheme.INT6, qt.values.float(), qt.scale)})
    with pytest.raises(MissingTensor, match=name):
        _encode(config, {n: t for n, t in quantized.items() if n != name})
    with pytest.raises(BadMetadata, match="sha256"):
        _encode(config, quantized, tokenizer_sha256="XYZ")
    with pytest.raises(VocabMismatch):
        _encode(config, quantized, vocab_size=config.vocab_size + 1)


def test_limits(tmp_path: Path, config: ModelConfig, quantized: dict[str, QTensor]) -> None:
    data = _encode(config, quantized)
    with pytest.raises(DecompressionBomb):
        read_artifact(data, max_decompressed=1000)
    path = tmp_path / "m.golf"
    path.write_bytes(data)
    with pytest.raises(TooLarge):
        read_artifact(path, max_decompressed=len(data) - 1)
    with pytest.raises(NotAnArtifact, match="cannot read"):
        read_artifact(tmp_path / "missing.golf")


# ---------------------------------------------------------------------------- architecture


def _meta_of(data: bytes) -> dict:
    blob = lzma.decompress(data)
    n = int.from_bytes(blob[:8], "little")
    return json.loads(json.loads(blob[8 : 8 + n])["__metadata__"]["golf"])


def test_metadata_records_the_architecture(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    data = _encode(config, quantized)
    assert _meta_of(data)["arch"] == DEFAULT_ARCH == "gpt-sp1024"
    art = read_artifact(data)
    assert art.metadata.arch == DEFAULT_ARCH
    assert art.summary().model_dump(mode="json")["arch"] == DEFAULT_ARCH
    assert type(load_model(art)) is GPT


def test_artifact_without_arch_loads_as_the_default(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    """Format-1 files written before the registry have no arch field."""
    old = Payload.decode(_encode(config, quantized)).with_meta(lambda d: d.pop("arch"))
    assert "arch" not in old.meta
    art = read_artifact(old.encode())
    assert art.metadata.arch == DEFAULT_ARCH
    assert art.metadata.version == 1
    assert art.schemes == {n: qt.scheme for n, qt in quantized.items()}
    new = read_artifact(_encode(config, quantized))
    got, expected = load_model(art).state_dict(), load_model(new).state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_unknown_arch_fails_with_a_one_line_message(
    config: ModelConfig, quantized: dict[str, QTensor]
) -> None:
    data = Payload.decode(_encode(config, quantized)).with_meta(set_at(["arch"], "mamba-130m"))
    with pytest.raises(UnknownArch) as info:
        read_artifact(data.encode())
    message = str(info.value)
    assert "mamba-130m" in message and "gpt-sp1024" in message and "\n" not in message
    assert isinstance(info.value, BadMetadata)
    with pytest.raises(UnknownArch, match="known: .*gpt-sp1024"):
        _encode(config, quantized, arch="mamba-130m")
    with pytest.raises(UnknownArchitecture, match="known: .*gpt-sp1024"):
        model_class("mamba-130m")


class WideGPT(GPT):
    """A registered variant: one extra declared matrix. Nothing in quantization changes."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        d = config.model_dim
        self.adapter = role(torch.nn.Linear(d, 4 * d, bias=False), Role.MATRIX)


def test_a_registered_variant_packs_reads_and_loads(
    tmp_path: Path, config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ARCHITECTURES, "gpt-wide", WideGPT)
    path = tmp_path / "wide.golf"
    random_artifact(config, SHA, config.vocab_size, path, seed=2, arch="gpt-wide")
    art = read_artifact(path)
    assert art.metadata.arch == "gpt-wide"
    assert art.schemes["adapter.weight"] is Scheme.INT6  # from the declared role
    model = load_model(art)
    assert type(model) is WideGPT
    # The same tensors under the default arch do not fit the default model.
    with pytest.raises(UnexpectedTensor, match="adapter.weight"):
        payload = Payload.decode(path.read_bytes())
        read_artifact(payload.with_meta(set_at(["arch"], DEFAULT_ARCH)).encode())
