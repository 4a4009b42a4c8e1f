"""Shared data types and helpers every layer may use: type aliases, the jobs a run passes
between layers (ChunkJob, MISSING, PointFailure), the Codec (all pickling, the same in
the cache, the engine and workers), Diagnostics and Status and their
coverage picture, the default collation, warnings at the user's line, text formatting,
optional dependencies. Imports nothing of swarm_memo but errors. Private: the public API
is ``swarm_memo.*``.
"""
