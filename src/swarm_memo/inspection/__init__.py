"""Reading a cache without running anything: verify, gc and its size cap, open_cache,
progress and show. Imports every layer below. Private: the public API is
``swarm_memo.*``.
"""
