"""pybuild: Dockerfiles to OCI images (frontend: parser, expansion, .dockerignore, build plan)."""
