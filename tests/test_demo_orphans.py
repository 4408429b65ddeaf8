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


def test_a_demo_whose_owner_died_before_it_was_ready_stops_with_its_services(tmp_path):
    """The race CI met: the owner killed between the demo's ready line and the demo reading its
    parent's pid. The demo then read init's pid as its owner's and ran on. Here the owner named in
    the environment is already gone (a reaped child's pid) before the demo starts."""
    from privacy_checks.demo.services import owned_by

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**os.environ, "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": "t" * 24, **owned_by(gone.pid)}
    demo = subprocess.Popen([sys.executable, "-m", "privacy_checks.demo", "--host", "127.0.0.1", "--port", "0",
                             "--data-dir", str(tmp_path), "--exit-with-parent"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                            start_new_session=True)
    try:
        ready = demo.stdout.readline()
        assert ready.startswith("privacy-checks demo ready"), ready
        children = [int(c) for c in open(f"/proc/{demo.pid}/task/{demo.pid}/children").read().split()]
        code = demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert code == 0
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in children if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"the demo's services still running: {left}"
