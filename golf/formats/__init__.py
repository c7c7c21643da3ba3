"""Artifact containers and quantization: reading, writing and importing model bytes.

`artifact` (the `.golf` file) and `quant` (its schemes); the board's own artifacts are
read by `detect` (one line naming what it found) over `compress` (one capped decoder per
compressor, the `BSHF` unshuffle), `torchzip` (the only torch.save reader: zip layout
checked, weights-only), `containers` (`{w,m}`, `int8_clean_per_row_v1`) and `pergroup`
(`PGRP` streams); `board` is `golf import RECORD_DIR`, `pg` the older `golf import-pg`.
"""
