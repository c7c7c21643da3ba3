"""Evaluation protocols, one module each; their names live in golf.spec.registry."""
