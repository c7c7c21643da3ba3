"""The early board: NaiveBaseline's relu² GPT and its descendants up to 2026-03-22.

From `2026-03-17_NaiveBaseline` to `2026-03-22_11L_EMA_GPTQ-lite_…` the records run the
seed stack's blocks with one difference in the math: the MLP squares a plain ReLU,
`proj(relu(fc(x))²)`, where the seed family (golf.models.gpt) squares LeakyReLU(0.5).
Everything else they vary is a ModelConfig knob of the shared blocks: full or partial
RoPE (`rope_dims`), RoPE NTK-scaled past a hard-coded length or never
(`rope_train_seq_len`), SmearGate + BigramHash, U-Net skips, XSA on the last layers,
LN scale, value embeddings, MLP width (`mlp_mult` = hidden / d); value residual off.
Parameter names, shapes and roles are the seed family's, declared in golf.models.gpt.
"""

import torch
from torch import Tensor

from golf.models.gpt import GPT, MLP


class ReluSquaredMLP(MLP):
    """relu(x)² MLP (modded-nanogpt's, as NaiveBaseline writes it)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(torch.relu(self.fc(x)).square())


class Relu2GPT(GPT):
    """The seed GPT with relu² MLPs: the early board's family."""

    mlp_class = ReluSquaredMLP
