"""A run killed outright (SIGKILL, a CI job's timeout) leaves no demo behind: the demo started
for it notices it is orphaned and stops, taking its cache and object store with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

PARENT = """
import json, os, sys
from privacy_checks.demo.launch import DemoProcess
demo = DemoProcess().start()
children = open(f"/proc/{demo.proc.pid}/task/{demo.proc.pid}/children").read().split()
print(json.dumps({"demo": demo.proc.pid, "children": [int(c) for c in children]}), flush=True)
sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def test_a_killed_run_leaves_no_demo_cache_or_object_store_running():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        started = json.loads(parent.stdout.readline())
        pids = [started["demo"], *started["children"]]
        assert len(pids) >= 3, started  # the demo, its Redis and its S3 server
        assert all(_alive(p) for p in pids)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    for p in left:  # never leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"still running after the run was killed: {left}"
