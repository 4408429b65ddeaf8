"""Used by tests/test_cleanup.py: creates subjects, says so, then waits to be killed."""

import signal
import sys
import time


def test_creates_two_subjects_then_waits(subject_factory):
    subject_factory("subject")
    subject_factory("control")
    print("SUBJECTS-CREATED", flush=True)
    # shown by the test if this run does not end when interrupted
    print(f"sigint handler {signal.getsignal(signal.SIGINT)!r}, blocked here: "
          f"{signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])}", flush=True)
    sys.stdout.flush()
    # short sleeps: an interrupt is acted on at the latest a tenth of a second after it arrives,
    # whichever thread of the run the kernel handed it to
    for _ in range(1200):
        time.sleep(0.1)
