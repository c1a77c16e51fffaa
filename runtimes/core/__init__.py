"""The cloud-neutral runtime that ships in every function artifact: engine, decoders,
record codec, dead-letter naming, manifest loader and the one engine bootstrap."""
