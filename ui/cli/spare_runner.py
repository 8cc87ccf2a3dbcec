"""A runner started ahead of need: it imports what `chiptwin run|resume` needs, then waits for its command.

    python -m ui.cli.spare_runner            # stdin: one JSON line {"args": [...], "log": PATH}

A lab supervisor keeps one spare. When a runner dies (or a queue entry starts), the supervisor hands
the spare its command line instead of starting a new interpreter: the seconds a runner spends
importing its libraries (most of a restart on a loaded machine; docs/lab.md) are already spent.
The spare then *is* the runner — same pid, same `python -m ui.cli.run` code path, its output
appended to ``log``. End of input without a line (the supervisor stopped) ends it unused.
"""

from __future__ import annotations

import json
import os
import sys


def _warm() -> None:
    """The runner's imports, now (the module-level ones of the run path and those inside its commands)."""
    import protocols.rigs  # noqa: F401
    import protocols.run.runner  # noqa: F401
    import store  # noqa: F401
    import store.lease  # noqa: F401
    import ui.cli.run  # noqa: F401


def _take_output(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(fd, 1), os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the supervisor's pipe is done with
    os.close(null)


def main() -> None:
    _warm()
    line = sys.stdin.readline()
    if not line.strip():
        return  # the supervisor stopped before it needed this spare
    request = json.loads(line)
    _take_output(str(request["log"]))
    from ui.cli.run import main as run_main

    sys.argv = ["chiptwin", *[str(a) for a in request["args"]]]
    run_main()


if __name__ == "__main__":
    main()
