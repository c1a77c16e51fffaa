"""The Azure Functions adapter: Event Grid BlobCreated notifications arriving through an
Event Hub in, the processed Event Hub (-> Data Explorer) out.

Runs inside the Functions Python worker: imports only the standard library, orjson,
azure-functions and the azure-* data-plane SDKs (loaded on first use). Entry point: the
v2 programming model's ``app`` in :mod:`runtimes.azure.function_app` (re-exported by the
artifact's root ``function_app.py``).
"""
