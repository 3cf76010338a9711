"""Dask worker preload for tests/test_class_grading.py: stands for a submission that kills
whichever worker runs it. The worker process dies when it starts the run of student
"abe-kills"; its nanny starts a fresh one, and the scheduler retries the task elsewhere
until its allowed failures are used up."""

import os

import grader_tests.class_grading as class_grading

_run_task = class_grading.run_task


def _dying_run_task(task, slot=None):
    if task.student == "abe-kills":
        os._exit(1)
    return _run_task(task, slot)


def dask_setup(worker):
    class_grading.run_task = _dying_run_task
