"""Computing missing points: the engine (exec chunks, window), backends and their wire
format, worker code, the memo's pool, graceful stops, chunk writers, progress. Imports
core and identity; never the cache. Private: the public API is ``swarm_memo.*``.
"""
