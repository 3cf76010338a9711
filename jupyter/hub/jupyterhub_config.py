"""JupyterHub for an attnlab class: one instructor, many students, one shared nbgrader exchange.

Copy jupyter/hub/ of the repository to /etc/attnlab/ and start the hub as root:
    jupyterhub -f /etc/attnlab/jupyterhub_config.py
README.md, "Teaching a class on a JupyterHub", says what to install first;
tests/test_hub.py runs this very file (with its own paths, users and ports).
"""

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

# --- adapt these four lines to your hub ----------------------------------------------------
VENV = "/opt/attnlab"  # the course's virtual environment: readable and executable by everyone
CONFIG = "/etc/attnlab"  # this folder: nbgrader_config.py, student/ and instructor/
INSTRUCTORS = {"instructor"}  # Unix user names
STUDENTS = {"student1", "student2", "student3"}
# --------------------------------------------------------------------------------------------

c.JupyterHub.bind_url = "http://:8000"
# Each person logs in with their own Unix account and password (PAM), and their Jupyter server
# runs as that user, in their home folder: the file permissions keep people apart.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = INSTRUCTORS | STUDENTS
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [f"{VENV}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.http_timeout = 120  # the first start of a server imports a lot


def _config_path(spawner) -> str:
    """Students get student/ (Assignments tab and Validate, no instructor tools)."""
    role = "instructor" if spawner.user.name in INSTRUCTORS else "student"
    return f"{CONFIG}/{role}:{CONFIG}"


c.Spawner.environment = {
    # read first by Jupyter and nbgrader, ahead of the environment's own configuration
    "JUPYTER_CONFIG_PATH": _config_path,
    "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
}
