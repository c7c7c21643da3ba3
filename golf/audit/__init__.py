"""Legality audits: whether a protocol's scores depend only on the strict prefix."""
