"""Where bytes live: the Store protocol and its capabilities, the local store (atomic,
durable, never through a symlink), fsspec stores, the URL registry. Imports core.
Private: the public API is ``swarm_memo.*``.
"""
