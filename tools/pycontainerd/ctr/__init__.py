"""pyctr: the docker-style client of pycontainerd (nerdctl's job), with Docker 20.10's verbs, flags,
output and exit codes. Entry point: `pycontainerd.ctr.cli:main`."""
