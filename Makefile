# The toolchain's entry points. `make test` installs what it needs (Debian peers, Python packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages of the real peers the interop tests compare against: command -> package.
PEERS  := runc:runc skopeo:skopeo umoci:umoci docker-registry:docker-registry jq:jq \
          oci-image-tool:oci-image-tool htpasswd:apache2-utils curl:curl containerd:containerd ctr:containerd \
          tini-static:tini wrk:wrk buildah:buildah /usr/lib/cni/bridge:containernetworking-plugins \
          ip:iproute2 iptables:iptables dockerd:docker.io
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install peers test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m pyrunc.install_entry $(BIN)/pyrunc
	$(BIN)/python -m pycontainerd.install_entry $(BIN)/pyctr
	@# pyrunc starts once per container: keep its bytecode compiled even where PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q tools

# Install only the peers that are missing; apt-get update only then.
peers:
	@missing=""; \
	for p in $(PEERS); do cmd=$${p%%:*}; pkg=$${p##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x "$$cmd" ] || missing="$$missing $$pkg"; done; \
	[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || missing="$$missing busybox-static"; \
	if [ -n "$$missing" ]; then \
	  echo "installing peers:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The leak checks run after the suite, also when it failed, so that what a failure left behind is named.
test: peers install
	@status=0; before=$$(mktemp); \
	find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d > $$before; \
	$(BIN)/pytest $(PYTEST_ARGS) --ignore=tests/final tests || status=$$?; \
	CGROUPS_BEFORE=$$before $(BIN)/pytest -q -p no:cacheprovider tests/final || status=$$?; \
	rm -f $$before; exit $$status

demo: peers install
	$(BIN)/python demo/run.py

bench: peers install
	$(BIN)/python bench/run.py $(BENCH)

clean:
	rm -rf $(VENV) build *.egg-info demo-out bench/out
