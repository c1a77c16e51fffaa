"""The cloud services' metric names that headwater's dashboards and alarms may use, copied
from each service's documentation (not from our code), with the page they come from.
``test_observe.py`` checks every metric a dashboard or an alarm names against this table or
the runtime's own vocabulary (runtimes/core/metrics.py)."""

from __future__ import annotations

AWS = {
    # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
    "AWS/Lambda": {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions",
                   "DeadLetterErrors"},
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
    "AWS/SQS": {"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesVisible",
                "NumberOfEmptyReceives", "NumberOfMessagesDeleted", "NumberOfMessagesReceived",
                "NumberOfMessagesSent", "SentMessageSize"},
    # https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html
    "AWS/Firehose": {"DeliveryToS3.Bytes", "DeliveryToS3.DataFreshness",
                     "DeliveryToS3.Records", "DeliveryToS3.Success", "IncomingRecords"},
}

GCP = {
    # https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run (Cloud Functions gen2
    # run on Cloud Run)
    "run.googleapis.com/request_count", "run.googleapis.com/request_latencies",
    "run.googleapis.com/container/instance_count",
    # https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-pubsub
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "pubsub.googleapis.com/subscription/dead_letter_message_count",
    "pubsub.googleapis.com/topic/send_message_operation_count",
    # https://cloud.google.com/monitoring/api/metrics_gcp_a_b#gcp-bigquery
    "bigquery.googleapis.com/storage/uploaded_row_count",
    "bigquery.googleapis.com/storage/uploaded_bytes",
}

AZURE = {
    # https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-eventhub-namespaces-metrics
    "Microsoft.EventHub/namespaces": {"IncomingMessages", "OutgoingMessages", "IncomingBytes",
                                      "OutgoingBytes", "ThrottledRequests", "ServerErrors",
                                      "UserErrors"},
    # https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-web-sites-metrics
    "Microsoft.Web/sites": {"FunctionExecutionCount", "FunctionExecutionUnits", "Http5xx"},
    # Application Insights tables (Azure Monitor Logs reference):
    # https://learn.microsoft.com/azure/azure-monitor/reference/tables/apptraces and
    # .../tables/appexceptions, .../tables/apprequests: the classic names traces,
    # exceptions, requests
    "tables": {"traces", "exceptions", "requests", "dependencies"},
}
