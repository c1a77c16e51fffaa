"""The AWS Lambda adapter: SQS events of S3 notifications in, Firehose out.

Runs inside Lambda: imports only the standard library, orjson and boto3/botocore.
Entry point: :func:`runtimes.aws.handler.handler`.
"""
