"""Test helpers for pipelines and plugins built on headwater (needs the ``dev`` extra).

``moto_server()`` runs a real moto server on 127.0.0.1 with a port chosen by the OS, the
AWS emulator headwater's own end-to-end tests and benchmarks run against::

    with moto_server() as url:
        os.environ["AWS_ENDPOINT_URL"] = url   # boto3 now talks to the emulator only
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["moto_server", "reset_moto"]


def reset_moto(url: str) -> None:
    """Empty every moto backend. They are process-wide: whatever ran before is gone."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


@contextmanager
def moto_server() -> Iterator[str]:
    """Start a moto server on 127.0.0.1, reset it, yield its URL, and stop it afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        reset_moto(url)
        yield url
    finally:
        server.stop()
