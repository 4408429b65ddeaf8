"""Used by tests/test_cleanup.py: creates subjects, says so, then waits to be killed."""

import sys
import time


def test_creates_two_subjects_then_waits(subject_factory):
    subject_factory("subject")
    subject_factory("control")
    print("SUBJECTS-CREATED", flush=True)
    sys.stdout.flush()
    time.sleep(120)
