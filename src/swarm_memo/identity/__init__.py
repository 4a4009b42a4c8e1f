"""Planning and identity, pure (no I/O): the grid and its chunks, canonical hashing, bin
digests, code fingerprints and what they reach, chunk order. Imports core. Private: the
public API is ``swarm_memo.*``.
"""
