"""nbgrader settings every user of the hub shares: the course and the exchange."""

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "attnlab"
# Created by root: `mkdir -p /srv/nbgrader/exchange && chmod 1777 /srv/nbgrader/exchange`.
c.Exchange.root = "/srv/nbgrader/exchange"
c.Exchange.path_includes_course = False
