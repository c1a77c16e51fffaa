"""A GCP stack's status, read over REST with the user's Application Default Credentials
(google-auth's ``AuthorizedSession``, loaded lazily):

- records in, written, dead-lettered and objects: the runtime's ``headwater request`` log
  lines (``jsonPayload.metrics``, with ``project`` / ``stack`` / ``pipeline``) summed over
  the window, from Cloud Logging ``entries:list``;
- errors and the last error: the function's log entries of severity ERROR or above in the
  window (its Cloud Run service; Cloud Run's own request-log lines are left out, each
  failed request would count twice), the newest one's ``error_type: error`` and ``object``;
- queue depth, dead-letter depth and the oldest waiting notification: the newest point of
  Pub/Sub's ``num_undelivered_messages`` / ``oldest_unacked_message_age`` of the push and
  dead-letter subscriptions, from Cloud Monitoring ``timeSeries.list``.

The project id, functions and subscriptions come from the stack's outputs (``project_id``,
``functions``, ``subscriptions``, ``dead_letter_subscriptions``). Roles needed:
``roles/logging.viewer`` and ``roles/monitoring.viewer``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import RUNTIME_METRICS, PipelineStatus, StatusError

__all__ = ["LOGGING_URL", "MAX_PAGES", "MONITORING_URL", "read_gcp"]

LOGGING_URL = "https://logging.googleapis.com"
MONITORING_URL = "https://monitoring.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PAGE_SIZE = 1000  # entries:list's maximum
MAX_PAGES = 10  # per query: entries:list's default read quota is 60 requests a minute
GAUGE_WINDOW_S = 600  # Pub/Sub samples every 60 s and reports a few minutes late
PUBSUB = "pubsub.googleapis.com/subscription/"
ROLES = "roles/logging.viewer and roles/monitoring.viewer"
TIMEOUT_S = 60


def read_gcp(pipelines: list[str], outputs: Mapping[str, Any], project: str, stack: str,
             since_s: int, now: float | None = None, session: Any = None,
             logging_url: str | None = None,
             monitoring_url: str | None = None) -> list[PipelineStatus]:
    """``project``: the Pulumi project (the metrics' dimension); the GCP project id is the
    stack output ``project_id``. ``session``: an ``AuthorizedSession`` (default: one with
    the Application Default Credentials)."""
    import google.auth.exceptions
    import requests

    now = time.time() if now is None else now
    project_id = _project_id(outputs)
    functions = outputs.get("functions") or {}
    subs = outputs.get("subscriptions") or {}
    dl_subs = outputs.get("dead_letter_subscriptions") or {}
    reader = _Reader(session, project_id, logging_url or LOGGING_URL,
                     monitoring_url or MONITORING_URL)
    since = _rfc3339(now - since_s)
    try:
        if reader.session is None:
            reader.session = _session()
        start, end = _rfc3339(now - GAUGE_WINDOW_S), _rfc3339(now)
        out = []
        for name in pipelines:
            st = PipelineStatus(name)
            reader.metrics(st, project, stack, since)
            if functions.get(name):
                reader.errors(st, functions[name], since)
            if subs.get(name):
                st.queue_depth = reader.newest(PUBSUB + "num_undelivered_messages",
                                               subs[name], start, end)
                st.oldest_age_s = reader.newest(PUBSUB + "oldest_unacked_message_age",
                                                subs[name], start, end)
            if dl_subs.get(name):
                st.dlq_depth = reader.newest(PUBSUB + "num_undelivered_messages",
                                             dl_subs[name], start, end)
            out.append(st)
        return out
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise StatusError(f"GCP: no credentials ({exc}); run `gcloud auth "
                          "application-default login` with an account that has "
                          f"{ROLES} on project {project_id}") from None
    except (google.auth.exceptions.GoogleAuthError, requests.RequestException) as exc:
        raise StatusError(f"GCP: {exc} (`gcloud auth application-default login`; "
                          f"needs {ROLES} on project {project_id})") from None


def _session() -> Any:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials)


def _project_id(outputs: Mapping[str, Any]) -> str:
    if outputs.get("project_id"):
        return str(outputs["project_id"])
    for settings in (outputs.get("function_settings") or {}).values():
        if isinstance(settings, Mapping) and settings.get("HEADWATER_PROJECT"):
            return str(settings["HEADWATER_PROJECT"])  # a stack deployed before project_id
    raise StatusError("GCP: the stack's outputs name no project (`project_id`): deploy the "
                      "stack with this version (`pulumi up`), or pass --outputs FILE")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _q(value: str) -> str:
    """A quoted string of the Logging / Monitoring filter languages."""
    return json.dumps(str(value))


class _Reader:
    def __init__(self, session: Any, project_id: str, logging_url: str,
                 monitoring_url: str) -> None:
        self.session, self.project_id = session, project_id
        self.logging_url = logging_url.rstrip("/")
        self.monitoring_url = monitoring_url.rstrip("/")

    def _json(self, response: Any, what: str) -> dict[str, Any]:
        if response.status_code == 200:
            return response.json() or {}
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        hint = {403: f"needs {ROLES} on project {self.project_id} "
                     "(`gcloud auth application-default login` as an account that has them)",
                404: f"is project {self.project_id} right, and its API enabled?",
                401: "`gcloud auth application-default login`"}.get(response.status_code,
                                                                   "try again later")
        raise StatusError(f"GCP {what}: HTTP {response.status_code}: {message}; {hint}")

    def entries(self, flt: str, st: PipelineStatus, what: str, order: str = "timestamp asc"):
        """Every entry matching ``flt``, page after page (at most :data:`MAX_PAGES`)."""
        body: dict[str, Any] = {"resourceNames": [f"projects/{self.project_id}"],
                                "filter": flt, "orderBy": order, "pageSize": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            page = self._json(self.session.post(f"{self.logging_url}/v2/entries:list",
                                                json=body, timeout=TIMEOUT_S),
                              "Cloud Logging entries:list")
            yield from page.get("entries") or []
            if not page.get("nextPageToken"):
                return
            body["pageToken"] = page["nextPageToken"]
        st.notes.append(f"{what}: read the first {MAX_PAGES * PAGE_SIZE} log entries only "
                        "(a shorter --since reads them all)")

    def metrics(self, st: PipelineStatus, project: str, stack: str, since: str) -> None:
        flt = (f'resource.type="cloud_run_revision" AND jsonPayload.message="headwater request"'
               f" AND jsonPayload.project={_q(project)} AND jsonPayload.stack={_q(stack)}"
               f" AND jsonPayload.pipeline={_q(st.pipeline)} AND timestamp>={_q(since)}")
        totals = dict.fromkeys(RUNTIME_METRICS, 0.0)
        for entry in self.entries(flt, st, "records"):
            values = (entry.get("jsonPayload") or {}).get("metrics") or {}
            for metric in totals:
                try:
                    totals[metric] += float(values.get(metric) or 0)
                except (TypeError, ValueError):
                    continue
        for metric, attr in RUNTIME_METRICS.items():
            setattr(st, attr, totals[metric])

    def errors(self, st: PipelineStatus, function: str, since: str) -> None:
        flt = (f'resource.type="cloud_run_revision" AND resource.labels.service_name='
               f"{_q(function.lower())} AND severity>=ERROR AND NOT httpRequest:*"
               f" AND timestamp>={_q(since)}")
        count = 0
        for entry in self.entries(flt, st, "errors", order="timestamp desc"):
            count += 1
            if count == 1:  # the newest
                line = entry.get("jsonPayload") or {}
                text = f"{line.get('error_type', '')}: {line.get('error', '')}".strip(": ")
                first = str(line.get("message") or entry.get("textPayload") or "").strip()
                st.last_error = text or first.split("\n", 1)[0]
                st.last_error_key = str(line.get("object") or "")
        st.errors = float(count)

    def newest(self, metric: str, subscription: str, start: str, end: str) -> float | None:
        """The newest point of ``metric`` for ``subscription`` (the largest over series);
        None when Cloud Monitoring has none in the window."""
        sub = subscription.rsplit("/", 1)[-1]  # a full name or the subscription id
        params: dict[str, str] = {
            "filter": f'metric.type="{metric}" AND resource.type="pubsub_subscription" AND '
                      f"resource.labels.subscription_id={_q(sub)}",
            "interval.startTime": start, "interval.endTime": end, "view": "FULL"}
        best: float | None = None
        url = f"{self.monitoring_url}/v3/projects/{self.project_id}/timeSeries"
        for _ in range(MAX_PAGES):
            page = self._json(self.session.get(url, params=params, timeout=TIMEOUT_S),
                              "Cloud Monitoring timeSeries.list")
            for series in page.get("timeSeries") or []:
                points = series.get("points") or []
                if points:  # newest first
                    value = points[0].get("value") or {}
                    raw = value.get("int64Value", value.get("doubleValue"))
                    if raw is not None:
                        best = float(raw) if best is None else max(best, float(raw))
            if not page.get("nextPageToken"):
                break
            params["pageToken"] = page["nextPageToken"]
        return best
