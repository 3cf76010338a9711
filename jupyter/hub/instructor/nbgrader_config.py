"""The instructor's course directory: the Formgrader and nbgrader commands work on it."""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.CourseDirectory.root = os.path.expanduser("~/attnlab-course")
