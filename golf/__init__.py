"""golf-eval core, in two halves: `golf.spec`, the torch-free contracts (parameters, plans,
records, statistics, registries) that clients and the service share, and the torch engine
beside it (data, models, formats, protocols, engine, audit)."""

__version__ = "0.1.0"
