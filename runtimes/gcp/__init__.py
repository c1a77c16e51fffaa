"""The Google Cloud Functions (gen2) adapter: Pub/Sub pushes of GCS notifications in,
BigQuery out.

Runs inside the function: imports only the standard library, orjson, functions-framework
and the google-cloud-* clients (each loaded when first used).
Entry point: ``main.handle`` at the artifact root, which is :func:`runtimes.gcp.main.handle`.
"""
