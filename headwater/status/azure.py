"""An Azure stack's status, read with the user's Entra ID credentials
(``DefaultAzureCredential``: ``az login``, environment or managed identity; SDKs loaded
lazily):

- records in, written, dead-lettered and objects from the ``headwater metrics`` traces the
  function writes (runtimes/azure/metrics.py), function errors (failed ``requests``), the
  oldest object's age when its processing started (max ``ObjectAgeSeconds``: the reading
  the stack's ``oldest-message`` alert rule uses) and the last ``ERROR`` / ``CRITICAL``
  line with its blob, from the pipeline's Application Insights through its query API
  (``POST https://api.applicationinsights.io/v1/apps/{appId}/query`` with ``query`` and
  ``timespan``; the response's ``tables`` of ``columns`` and ``rows``), with the KQL the
  stack's workbook and alert rules use (:func:`base_query`);
- the DLQ depth: the notifications the function parked under
  ``<deadletter prefix>notifications/<pipeline>/`` in the dead-letter container, not
  replayed yet (the files ``headwater replay`` would run).

The queue depth stays unknown (None): Event Hubs has no backlog API; the backlog is the
partitions' last sequence numbers minus the function's checkpoints, which would mean
reading the host's checkpoint blobs.

Which component and container belong to a pipeline comes from the stack's outputs
(``insights_app_ids``, ``function_settings``: ``pulumi stack output --json``).
Permissions needed: Monitoring Reader (or Reader) on each pipeline's Application Insights,
Storage Blob Data Reader on its dead-letter container.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import PipelineStatus, StatusError

__all__ = ["API", "base_query", "read_azure"]

API = "https://api.applicationinsights.io"
SCOPE = "https://api.applicationinsights.io/.default"
FIELDS = {"Objects": "objects", "Received": "records_in", "Written": "written",
          "DeadLettered": "dead_lettered"}
ROLES = ("sign in with `az login` (or set AZURE_* credentials); the identity needs "
         "Monitoring Reader on each pipeline's Application Insights and Storage Blob Data "
         "Reader on its dead-letter container")


def base_query(project: str, stack: str, pipeline: str) -> str:
    """The pipeline's ``headwater metrics`` lines in its Application Insights (the stack's
    workbook and alert rules query the same)."""
    return ('traces | where message has "headwater metrics" | extend m = parse_json(message) '
            f'| where tostring(m.project) == "{project}" and tostring(m.stack) == "{stack}" '
            f'and tostring(m.pipeline) == "{pipeline}"')


def counts_query(project: str, stack: str, pipeline: str) -> str:
    sums = ", ".join(f"{n} = sum(todouble(m.metrics.{n}))" for n in FIELDS)
    return (f"{base_query(project, stack, pipeline)} | summarize {sums}, "
            "ObjectAgeSeconds = max(todouble(m.metrics.ObjectAgeSeconds)) "
            "| extend Errors = toscalar(requests | where success == false | count)")


def last_error_query(pipeline: str) -> str:
    return ('traces | where message has "ERROR" | extend m = parse_json(message) '
            f'| where tostring(m.level) in ("ERROR", "CRITICAL") and tostring(m.pipeline) == '
            f'"{pipeline}" | top 1 by timestamp desc | project timestamp, '
            "error_type = tostring(m.error_type), error = tostring(m.error), "
            "message = tostring(m.message), blob = coalesce(tostring(m.blob.name), "
            "tostring(m.blob))")


def read_azure(pipelines: list[str], outputs: Mapping[str, Any], project: str, stack: str,
               since_s: int, now: float | None = None, *, credential: Any = None,
               endpoint: str = API, blob_service: Callable[[str], Any] | None = None,
               timeout: float = 60.0) -> list[PipelineStatus]:
    """``credential``: anything with ``get_token(scope)`` (default DefaultAzureCredential);
    ``endpoint``: the query API's base URL; ``blob_service(account_url)``: the
    ``BlobServiceClient`` of a pipeline's storage account (default: with ``credential``)."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    apps = outputs.get("insights_app_ids")
    if not isinstance(apps, Mapping):
        raise StatusError("the stack's outputs have no insights_app_ids: `pulumi up` the stack "
                          "with this headwater version, or pass --outputs FILE")
    settings = outputs.get("function_settings") or {}
    end = time.time() if now is None else now
    timespan = f"{_iso(end - since_s)}/{_iso(end)}"
    try:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        token = credential.get_token(SCOPE).token
        if blob_service is None:
            from azure.storage.blob import BlobServiceClient

            def blob_service(url: str) -> Any:
                return BlobServiceClient(url, credential=credential)

        out = []
        for name in pipelines:
            st = PipelineStatus(name)
            if apps.get(name):
                query = _query(endpoint, apps[name], token, timespan, timeout)
                _counts(st, query(counts_query(project, stack, name)))
                _last_error(st, query(last_error_query(name)))
            dl = settings.get(name) or {}
            if dl.get("HEADWATER_BLOB_ACCOUNT_URL"):
                with blob_service(dl["HEADWATER_BLOB_ACCOUNT_URL"]) as service:
                    st.dlq_depth = float(_parked(service, dl, name))
            out.append(st)
        return out
    except ClientAuthenticationError as exc:
        raise StatusError(f"Azure: {_first_line(exc)}; {ROLES}") from None
    except HttpResponseError as exc:
        hint = ROLES if exc.status_code in (401, 403, 404) else "try again"
        raise StatusError(f"Azure Storage: {exc.status_code} {exc.reason}: {_first_line(exc)}; "
                          f"{hint}") from None
    except AzureError as exc:
        raise StatusError(f"Azure: {_first_line(exc)}; {ROLES}") from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _query(endpoint: str, app_id: str, token: str, timespan: str, timeout: float
           ) -> Callable[[str], list[dict[str, Any]]]:
    """``kql -> rows`` (dicts by column name) of the first table the query API returns."""
    import requests

    url = f"{endpoint.rstrip('/')}/v1/apps/{app_id}/query"

    def run(kql: str) -> list[dict[str, Any]]:
        try:
            r = requests.post(url, json={"query": kql, "timespan": timespan}, timeout=timeout,
                              headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            raise StatusError(f"Application Insights query API {url}: {exc}") from None
        if r.status_code != 200:
            try:
                detail = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = r.text[:200]
            hint = ROLES if r.status_code in (401, 403, 404) else "try again"
            raise StatusError(f"Application Insights {app_id}: {r.status_code} {r.reason}: "
                              f"{detail}; {hint}")
        tables = r.json().get("tables") or [{}]
        cols = [c["name"] for c in tables[0].get("columns") or []]
        return [dict(zip(cols, row, strict=False)) for row in tables[0].get("rows") or []]

    return run


def _counts(st: PipelineStatus, rows: list[dict[str, Any]]) -> None:
    row = rows[0] if rows else {}
    for column, attr in FIELDS.items():
        setattr(st, attr, float(row.get(column) or 0))
    st.errors = float(row.get("Errors") or 0)
    if row.get("ObjectAgeSeconds") is not None:
        st.oldest_age_s = float(row["ObjectAgeSeconds"])


def _last_error(st: PipelineStatus, rows: list[dict[str, Any]]) -> None:
    if rows:
        line = rows[0]
        st.last_error = (f"{line.get('error_type') or ''}: {line.get('error') or ''}"
                         .strip(": ") or str(line.get("message") or ""))
        st.last_error_key = str(line.get("blob") or "")


def _parked(service: Any, settings: Mapping[str, str], pipeline: str) -> int:
    """The pipeline's parked notifications not replayed yet (as ``headwater replay`` lists
    them)."""
    from runtimes.azure.deadletter import BlobDeadLetter
    from runtimes.core.replay import deadletter_files

    dl = BlobDeadLetter(service.get_container_client(
        settings.get("HEADWATER_DEADLETTER_CONTAINER") or "deadletter"),
        settings.get("HEADWATER_DEADLETTER_PREFIX", "deadletter/"))
    return len(deadletter_files(dl.store(), dl.prefix + "notifications/", pipeline,
                                suffix=".json"))
