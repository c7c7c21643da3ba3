"""The evaluation service: FastAPI front end, SQLite job store and the shard scheduler.

It plans golf's canonical windows into shards of whole batches, runs them on the Ray
actors of `workers/` and assembles the same reports as `golf eval`.
"""
