"""Training: train → EMA → pre-quant TTT → GPTQ int6 → LZMA `.golf` artifact, on golf/."""
