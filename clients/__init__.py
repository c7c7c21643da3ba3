"""Python SDK of the golf-eval service: HTTP only, so it imports neither torch nor ray."""

from clients.sdk import AsyncClient, Client, Event, ServiceError

__all__ = ["AsyncClient", "Client", "Event", "ServiceError"]
