"""Validation data: token shards, the bytes each token stands for, the offline demo dataset."""
