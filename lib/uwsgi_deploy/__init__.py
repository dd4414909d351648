"""uwsgi-deploy: push-to-deploy for Python apps under a uWSGI Emperor."""


class DeployError(Exception):
    """A failure the tools report as one line on stderr and a non-zero exit.

    The message must name what failed and where (file, line, option) and
    never contain an environment value.
    """
