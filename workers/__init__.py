"""Ray actors that run evaluation shards: one per GPU, or CPU actors when there is none."""
