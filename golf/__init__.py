"""golf-eval core: data, byte accounting, model, artifact, window plan, protocols."""

__version__ = "0.1.0"
