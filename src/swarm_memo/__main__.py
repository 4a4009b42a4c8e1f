"""``python -m swarm_memo``: the ``swarm-memo`` command-line tool."""

from __future__ import annotations

from swarm_memo.cli import main

if __name__ == "__main__":
    main(prog_name="python -m swarm_memo")
