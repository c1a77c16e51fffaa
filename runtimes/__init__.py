"""Where records flow: the code that runs inside a function artifact or the local runner.

``core/`` is cloud-neutral and ships in every artifact; ``aws/`` (and each cloud beside it)
is one function adapter and ships in that cloud's artifacts only; ``local/`` is the embedded
runner behind ``headwater run``. Nothing here reads the pydantic spec: a runtime is
configured by the baked manifest (:mod:`runtimes.core.manifest`).
"""
