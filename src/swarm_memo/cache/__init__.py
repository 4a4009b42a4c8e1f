"""The cache and what it means: its layout (SetPaths), chunk files (codec, typed meta),
params sets, the point index and its segments, reuse of stored points, the serving
policy (code and axis order), axis defaults, claims and leases, listing a cache. Imports
core, identity and stores; never execution. Private: the public API is ``swarm_memo.*``.
"""
