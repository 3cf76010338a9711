"""nbgrader configuration of the attnlab course directory.

Run nbgrader from the repository root (or copy `solutions/`, this file and `course/` into
your own course directory): the instructor versions are the source, the student versions
are the release. `make build` writes each solutions/NN_name/NN_name.ipynb from its jupytext
source; the `.py` sources hold the solutions and are ignored so they are never released.
"""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "attnlab"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
# A Japanese class: the same commands with ATTNLAB_LANG=ja. The Japanese edition's instructor
# notebooks (built by `make build` into solutions-ja/) are the source, course/ja/ the release;
# grade ids, points and graders are the same, and the feedback is in Japanese.
if os.environ.get("ATTNLAB_LANG", "").lower().startswith("ja"):
    c.CourseDirectory.source_directory = "solutions-ja"
    c.CourseDirectory.release_directory = "course/ja"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# Every notebook runs top to bottom in under 3 minutes; one cell may train a small model.
# nbgrader's default is 30 s per cell, which a slow machine could exceed; an infinite loop
# in a submission is still stopped after this many seconds and graded 0.
c.ExecutePreprocessor.timeout = 120
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# No environment variables are set here: this file is also read by the nbgrader extensions
# of a learner's JupyterLab, and a learner's kernel must not run in grading mode. nbgrader
# itself sets NBGRADER_EXECUTION ("validate" / "autograde") for the kernels it starts, and
# attnlab reads that (static figures, grading mode); see grader_tests/sandbox.py.

# Autograde runs each submission in a bubblewrap sandbox and decides the hidden tests
# outside it (grader_tests/autograde.py): nbgrader's Execute step is replaced, the rest of
# its pipeline is nbgrader's own.
c.Autograde.autograde_preprocessors = [
    "grader_tests.autograde.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
