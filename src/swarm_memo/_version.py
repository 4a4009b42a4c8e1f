"""The version of swarm-memo (read by the build and written into chunk provenance)."""

__version__ = "0.2.0"
