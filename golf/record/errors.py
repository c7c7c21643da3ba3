"""The one error a record folder can raise: `RecordError`, a GolfError with one line.

Everything in golf.record reads untrusted files, so every refusal (a cap passed, a file
that is not text, a shim that does not decode, code that does not parse) is this type,
naming the file.
"""

from golf.spec.errors import GolfError


class RecordError(GolfError):
    """A record folder (or one of its files) cannot be read safely."""
