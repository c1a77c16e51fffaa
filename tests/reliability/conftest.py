"""The Azure column imports the Azure end-to-end helpers (``azure_harness``) by module name,
as their own folder's conftest does; that folder goes on ``sys.path`` here so that
``tests/reliability`` also runs alone."""

from __future__ import annotations

import sys
from pathlib import Path

_AZURE = str(Path(__file__).resolve().parents[1] / "e2e" / "azure")
if _AZURE not in sys.path:
    sys.path.insert(0, _AZURE)
