"""One call end to end: the config parsed at the edge, planning a request, the one pipeline
(serve, execute, store, sink), sinks, chunk records, compact, the decorators, launch and
its budgets, claim cells, recorded requests and their coverage. Imports every layer
below. Private: the public API is ``swarm_memo.*``.
"""
