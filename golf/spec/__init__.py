"""The torch-free half of golf: the contracts that clients, the service and the CLI share.

Evaluation parameters, model configs, window and job plans, records, statistics, tables,
errors, the console, and the protocol registry (names only; each protocol's module is
imported on first use). Nothing here imports torch: `golf submit` works without it.
"""
