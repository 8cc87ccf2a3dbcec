"""The panel imports the twin's stack in the background once per process (first visitor)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, threading
from ui.panel import context
assert not any(name in sys.modules for name in context.HEAVY_MODULES), "imported before the warm-up"
context.warm_up_in_background()
context.warm_up_in_background()  # a second visitor: no second thread
threads = [t for t in threading.enumerate() if t.name == "panel-warm-up"]
assert len(threads) == 1, threads
threads[0].join(120)
missing = [name for name in context.HEAVY_MODULES if name not in sys.modules]
assert not missing, missing
print("ok")
"""


def test_warm_up_imports_the_twin_pages_modules_once_in_a_fresh_process():
    # a fresh interpreter: in this one other tests have already imported the modules
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
