"""The Azure Functions entry (Python v2 programming model): ``app``.

One function, ``headwater``, triggered by the notifications Event Hub (cardinality many,
identity-based connection ``EVENTHUB``: the app setting ``EVENTHUB__fullyQualifiedNamespace``)
with a function-level retry policy (exponential backoff). Hub and consumer group come
from app settings the component sets. The work is in :mod:`runtimes.azure.handler`.
"""

from __future__ import annotations

import azure.functions as func

from . import handler

__all__ = ["MAX_RETRIES", "app"]

MAX_RETRIES = 5

app = func.FunctionApp()


@app.function_name("headwater")
@app.retry(strategy="exponential_backoff", max_retry_count=str(MAX_RETRIES),
           minimum_interval="00:00:10", maximum_interval="00:15:00")
@app.event_hub_message_trigger(arg_name="events", connection="EVENTHUB",
                               event_hub_name="%HEADWATER_NOTIFICATIONS_HUB%",
                               consumer_group="%HEADWATER_CONSUMER_GROUP%",
                               cardinality="many", data_type="binary")
def headwater(events: list[func.EventHubEvent], context: func.Context) -> None:
    retry = getattr(context, "retry_context", None)
    handler.handle(
        [e.get_body() for e in events],
        retry_count=int(getattr(retry, "retry_count", 0) or 0),
        # no retry context: a single attempt, so failures are parked at once
        max_retry_count=int(getattr(retry, "max_retry_count", 0) or 0),
        invocation_id=str(getattr(context, "invocation_id", "") or ""))
