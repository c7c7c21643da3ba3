"""What a stream protocol hands back per unit: the targets it scored and their NLLs.

Its own module because both the protocols and the gang's collectives (which move units
between ranks) hold them, and neither should import the other for a record type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scored:
    """One unit's scores: target indices (target i is token i + 1) and their NLL (nats)."""

    unit: int
    targets: np.ndarray
    nll: np.ndarray
