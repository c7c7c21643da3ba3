"""The early board: NaiveBaseline's relu² GPT and its descendants up to 2026-03-22.

From `2026-03-17_NaiveBaseline` to `2026-03-22_11L_EMA_GPTQ-lite_…` the records run the
seed stack's blocks with one difference in the math: the MLP squares a plain ReLU,
`proj(relu(fc(x))²)`, where the seed family (golf.models.gpt) squares LeakyReLU(0.5).
Everything else they vary is a ModelConfig knob of the shared blocks: full or partial
RoPE (`rope_dims`), RoPE NTK-scaled past a hard-coded length or never
(`rope_train_seq_len`), SmearGate + BigramHash, U-Net skips, XSA on the last layers,
LN scale, value embeddings, MLP width (`mlp_mult` = hidden / d); value residual off.
Parameter names, shapes and roles are the seed family's, declared in golf.models.gpt.
One record of the period builds its input its own way (`PairHashRelu2GPT`, overriding
only `embed`): 2026-03-19_smeargate_orthoinit_muonwd's pair hash and keep-gate.
"""

import torch
from torch import Tensor, nn

from golf.models.gpt import CONTROL, EMBEDDING, GPT, MATRIX, MLP, CastedLinear, rms_norm
from golf.models.roles import role, roles_of
from golf.spec.config import ModelConfig


class ReluSquaredMLP(MLP):
    """relu(x)² MLP (modded-nanogpt's, as NaiveBaseline writes it)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(torch.relu(self.fc(x)).square())


class Relu2GPT(GPT):
    """The seed GPT with relu² MLPs: the early board's family."""

    mlp_class = ReluSquaredMLP


class PairHashEmbedding(nn.Module):
    """`table` rows of (previous · 92821 + current) mod buckets, projected to d (no scale);
    the first position pairs with token 0."""

    def __init__(self, buckets: int, dim: int, out_dim: int):
        super().__init__()
        self.buckets = buckets
        self.table = role(nn.Embedding(buckets, dim), EMBEDDING)
        self.proj = role(CastedLinear(dim, out_dim, bias=False), MATRIX)

    def forward(self, ids: Tensor) -> Tensor:
        prev = torch.cat((torch.zeros_like(ids[:, :1]), ids[:, :-1]), dim=1)
        return self.proj(self.table((prev.long() * 92821 + ids.long()) % self.buckets))


class KeepGate(nn.Module):
    """SmearGate that keeps: sigmoid(gate)·x + (1 − sigmoid(gate))·x_prev."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = role(nn.Parameter(torch.full((dim,), 3.0)), CONTROL)

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate).to(x.dtype)
        prev = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), dim=1)
        return g * x + (1.0 - g) * prev


class PairHashRelu2GPT(Relu2GPT):
    """2026-03-19_smeargate_orthoinit_muonwd: the relu² GPT whose input is
    `rms_norm(keep_gate(tok_emb + pair_hash))` — hash, gate and order of its own.

    The config's `bigram_vocab_size`/`bigram_dim` size `bigram_hash` and `smear` switches
    `smeargate` on; the seed family's `bigram`/`smear` modules are not built.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config.replace(bigram_vocab_size=0, smear=False))
        self.config = config
        d = config.model_dim
        if config.bigram_vocab_size:
            self.bigram_hash = PairHashEmbedding(config.bigram_vocab_size, config.bigram_dim, d)
            if not self.tok_emb.weight.is_meta:
                nn.init.normal_(self.bigram_hash.table.weight, std=0.01)
        if config.smear:
            self.smeargate = KeepGate(d)
        self._roles = roles_of(self)

    def embed(self, ids: Tensor) -> Tensor:
        x = self.tok_emb(ids)
        if self.config.bigram_vocab_size:
            x = x + self.bigram_hash(ids)
        if self.config.smear:
            x = self.smeargate(x)
        return rms_norm(x)
