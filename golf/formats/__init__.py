"""Artifact containers and quantization: reading, writing and importing model bytes."""
