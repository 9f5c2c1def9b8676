"""`pybuild --load`: the image goes into pycontainerd (through `pyctr load`, as buildx hands it to `docker load`)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.pycontainerd.daemon_fixture import daemon  # noqa: F401  (fixture)

PYCTR = str(Path(sys.executable).with_name("pyctr"))


def test_load_into_pycontainerd_then_run(builder, daemon):  # noqa: F811
    ctx = builder.ctx('FROM base\nRUN echo loaded > /msg\nCMD ["cat", "/msg"]\n')
    env = {"PYCTR_ADDRESS": str(daemon.address)}
    r = builder.build(ctx, "--load", "-t", "pybuild-load:1", env=env)
    assert "importing to pycontainerd done" in r.err
    ctr_env = {**os.environ, **env}
    images = subprocess.run([PYCTR, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True, env=ctr_env, timeout=60)
    assert "pybuild-load:1" in images.stdout, images.stdout + images.stderr
    out = subprocess.run([PYCTR, "run", "--rm", "pybuild-load:1"], capture_output=True, text=True, env=ctr_env,
                         timeout=120)
    assert (out.returncode, out.stdout) == (0, "loaded\n"), out.stderr


def test_load_needs_a_tag_and_a_daemon(builder, tmp_path):
    ctx = builder.ctx("FROM base\n")
    r = builder.build(ctx, "--load", check=False)
    assert r.code == 1 and "--load needs a tag" in r.err
    r = builder.build(ctx, "--load", "-t", "x:1", env={"PYCTR_ADDRESS": str(tmp_path / "none.sock")}, check=False)
    assert r.code == 1
    assert "Cannot connect to the pycontainerd daemon" in r.err.splitlines()[-1], r.err
