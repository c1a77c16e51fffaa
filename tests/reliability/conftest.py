"""The Azure column imports the Azure end-to-end helpers (``azure_harness``) by module name,
as their own folder's conftest does; that folder goes on ``sys.path`` here so that
``tests/reliability`` also runs alone."""

from __future__ import annotations

import sys
from pathlib import Path

_AZURE = str(Path(__file__).resolve().parents[1] / "e2e" / "azure")
if _AZURE not in sys.path:
    sys.path.insert(0, _AZURE)

# The emulators, started once for every module of the matrix and of replay (each module
# imports its cloud's function-scoped fixtures, such as its own ``orders_stack``).
from e2e.aws.conftest import moto_server  # noqa: E402, F401
from e2e.azure.conftest import azurite  # noqa: E402, F401
from e2e.gcp.conftest import firestore_emulator, gcs_emulator, pubsub_emulator  # noqa: E402, F401
