"""What a deployed function builds once per container (Lambda), instance (Cloud Run) or
worker (Azure Functions) and every invocation reuses: its runtime (engine, clients,
settings), built on the first invocation from the environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Once"]

T = TypeVar("T")


class Once(Generic[T]):
    def __init__(self, build: Callable[[], T], reset_clients: Callable[[], None]) -> None:
        self._build = build
        self._reset_clients = reset_clients
        self.state: list[T] = []  # the built runtime, once built

    def get(self) -> T:
        if not self.state:
            self.state.append(self._build())
        return self.state[0]

    def reset(self) -> None:
        """Forget the runtime and the clients (tests switch endpoints and settings)."""
        self.state.clear()
        self._reset_clients()

    def reload(self) -> T:
        """Build the runtime anew from the environment as it is now, keeping the clients
        (``headwater replay`` runs the deployed function's settings with the current
        chain)."""
        self.state.clear()
        return self.get()
