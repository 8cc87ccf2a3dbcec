"""A stand-in for ui.endpoints.opcua / ui.endpoints.sila (written by other helpers): it records its
pid and arguments in $LAB_STANDIN_DIR and waits to be stopped, like a server would."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    folder = Path(os.environ["LAB_STANDIN_DIR"])
    (folder / f"{os.getpid()}.json").write_text(json.dumps(sys.argv[1:]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = time.monotonic() + 600  # bounded: never outlives a test run
    while time.monotonic() < deadline:
        time.sleep(0.1)
