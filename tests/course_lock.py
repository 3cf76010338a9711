"""One lock for the committed course/ folder, shared by every test that reads it.

The browser test (tests/test_browser.py) runs the course in the JupyterLab that `make course`
starts, and JupyterLab saves outputs (autosave, Validate) into course/*.ipynb; the test backs
course/ up and restores it afterwards, holding this lock exclusively all the while. Tests that
read course/ (the build drift check in tests/test_build.py, the points check in
tests/test_autograde.py) hold it shared, so they never see a half-modified course/: not on
another pytest-xdist worker, and not in another pytest process on the same checkout. An
advisory lock (flock) on a file outside the repository, keyed by the checkout's path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = (
    Path(tempfile.gettempdir())
    / f"attnlab-course-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]}.lock"
)


@contextlib.contextmanager
def course_dir_lock(*, exclusive: bool):
    """Hold the course/ lock: exclusive to modify course/, shared to read it."""
    with open(LOCK_FILE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
