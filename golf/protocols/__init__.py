"""Evaluation protocols by name. A new protocol is one module here plus one registry entry."""

from __future__ import annotations

from golf.errors import ConfigError
from golf.protocols.base import Batch, Protocol
from golf.protocols.params import EvalParams
from golf.protocols.plain import Plain
from golf.protocols.sliding import Sliding
from golf.protocols.slot import Slot
from golf.protocols.slot_causal import SlotCausal

PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol for protocol in (Plain(), Sliding(), Slot(), SlotCausal())
}


def get_protocol(name: str) -> Protocol:
    """The registered protocol called `name`; ConfigError naming the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        known = ", ".join(PROTOCOLS)
        raise ConfigError(f"unknown protocol {name!r}; expected one of: {known}") from None


__all__ = ["PROTOCOLS", "Batch", "EvalParams", "Protocol", "get_protocol"]
