"""The local runtime: ``headwater run`` over a folder into a DuckDB warehouse.

- :mod:`.runner`: objects -> engine -> warehouse, one transaction per object, ledger.
- :mod:`.duckdb_sink`: the warehouse sink.
- :mod:`.ledger`: which object versions are done.
- :mod:`.lookup`: ``ctx.lookup`` over ``<root>/lookup/`` and ``ctx.secret`` over the environment.
- :mod:`.report`: progress bar and summary table.
"""

from .duckdb_sink import DuckDBSink, SinkSchemaError, sql_type
from .ledger import LEDGER_TABLE, Ledger
from .lookup import FolderLookup, LookupUnavailable, SecretMissing, env_secret, secret_env_name
from .runner import LocalRunner, ObjectError, PipelineReport, RunReport, list_objects

__all__ = [
    "LEDGER_TABLE",
    "DuckDBSink",
    "FolderLookup",
    "Ledger",
    "LocalRunner",
    "LookupUnavailable",
    "ObjectError",
    "PipelineReport",
    "RunReport",
    "SecretMissing",
    "SinkSchemaError",
    "env_secret",
    "list_objects",
    "secret_env_name",
    "sql_type",
]
