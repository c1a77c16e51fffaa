"""Test helpers a user can reuse: emulator starters and test doubles for the engine's ports.

Never shipped in a function artifact (the layout ships ``headwater/__init__.py`` only).
"""

from .doubles import FaultySink, MemoryDeadLetter, MemorySink, NdjsonSink
from .emulators import moto_server, reset_moto

__all__ = ["FaultySink", "MemoryDeadLetter", "MemorySink", "NdjsonSink", "moto_server",
           "reset_moto"]
