"""Evaluation protocols by name. A new protocol is one module in golf/protocols/ plus one
registry line here.

The registry names each protocol's class by module path and imports it on first use (as
vLLM's model registry does), so listing the names needs no torch: the client CLI offers
them as choices in an install without it.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams

if TYPE_CHECKING:
    from golf.protocols.base import Protocol

REGISTRY: dict[str, str] = {
    "plain": "golf.protocols.plain:Plain",
    "sliding": "golf.protocols.sliding:Sliding",
    "slot": "golf.protocols.slot:Slot",
    "slot-causal": "golf.protocols.slot_causal:SlotCausal",
    "ttt": "golf.protocols.ttt:TTT",
    "ttt-lora": "golf.protocols.ttt_lora:TTTLoRA",
    "ttt-phased": "golf.protocols.ttt_phased:TTTPhased",
}


def protocol_names() -> tuple[str, ...]:
    """The registered protocol names, in registry order."""
    return tuple(REGISTRY)


def get_protocol(name: str) -> Protocol:
    """The registered protocol called `name`; ConfigError naming the known ones otherwise."""
    if name not in REGISTRY:
        known = ", ".join(REGISTRY)
        raise ConfigError(f"unknown protocol {name!r}; expected one of: {known}")
    return _instance(name)


@cache
def _instance(name: str) -> Protocol:
    module, cls = REGISTRY[name].split(":")
    protocol = getattr(import_module(module), cls)()
    if protocol.name != name:
        raise RuntimeError(f"registry entry {name!r} is a protocol named {protocol.name!r}")
    return protocol


__all__ = ["REGISTRY", "EvalParams", "get_protocol", "protocol_names"]
