"""`pyctr compose`: compose files (the Compose spec) to running apps on pycontainerd."""
