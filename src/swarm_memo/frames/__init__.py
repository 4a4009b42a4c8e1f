"""pandas and xarray frames built from (point, output) pairs. Imports core and identity.
Private: the public API is ``swarm_memo.*``.
"""
