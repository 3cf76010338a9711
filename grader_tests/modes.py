"""Which kind of kernel this is: a grading kernel, and inside the sandbox, where checks record.

Read from the environment only (nbgrader sets NBGRADER_EXECUTION for the kernels it starts;
attnlab's sandbox sets ATTNLAB_GRADING=1 and ATTNLAB_RESULTS_DIR inside bubblewrap only).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["grading_mode", "recording_dir"]


def grading_mode() -> bool:
    """True in a kernel started by nbgrader (validate/autograde) or by attnlab-grade's sandbox.

    nbgrader sets NBGRADER_EXECUTION for the kernels it starts, never for a learner's own.
    """
    return (
        bool(os.environ.get("NBGRADER_EXECUTION")) or os.environ.get("ATTNLAB_GRADING", "") == "1"
    )


def recording_dir() -> Path | None:
    """Inside the sandbox: the folder hidden checks record into (None elsewhere)."""
    path = os.environ.get("ATTNLAB_RESULTS_DIR")
    return Path(path) if path and os.environ.get("ATTNLAB_GRADING") == "1" else None
