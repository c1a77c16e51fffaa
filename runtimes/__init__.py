"""Runtimes: spec, engine, formats, sinks, dead-letter, per-cloud adapters, packaging."""
