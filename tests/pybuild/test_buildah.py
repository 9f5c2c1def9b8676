"""The same Dockerfiles built by buildah (vfs, chroot isolation) give the same files as pybuild."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support import require

DOCKERFILES = {
    "single": """\
ARG BASE=base
FROM $BASE
ENV GREETING=hello
WORKDIR /app
COPY hello.txt .
COPY sub/ ./sub/
COPY --chmod=600 hello.txt /etc/private
RUN echo "$GREETING from run" > /app/run.txt && rm /bin/vi && mkdir -p /var/x && ln -s /app/run.txt /var/x/link
USER nobody
CMD ["cat", "/app/run.txt"]
""",
    "multi": """\
ARG BASE=base
FROM $BASE AS build
RUN mkdir -p /out/d && echo built > /out/d/artifact && chmod 700 /out/d
COPY sub /srcsub

FROM $BASE
COPY --from=build /out /opt/
COPY --from=build /srcsub/a.txt /a.txt
RUN rm -r /usr/sbin && echo done > /done
WORKDIR /work
""",
}


BUILDAH_ARTIFACTS = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "run")


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                what = p.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return out


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_same_files_as_buildah(builder, tmp_path, name):
    require("buildah")
    require("umoci")
    ctx = builder.ctx(DOCKERFILES[name], {"hello.txt": "hi\n", "sub/a.txt": "A\n", "sub/b/c.txt": "C\n"})
    ours = tmp_path / "ours"
    builder.build(ctx, "-o", f"type=local,dest={ours}")
    store = tmp_path / "buildah"
    bh = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver", "vfs"]
    try:
        p = subprocess.run([*bh, "bud", "--isolation", "chroot", "--build-arg", f"BASE=oci:{builder.base}:latest",
                            "-t", "pbtest", str(ctx)], capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        layout = tmp_path / "bh-layout"
        p = subprocess.run([*bh, "push", "pbtest", f"oci:{layout}:t"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    finally:
        subprocess.run([*bh, "rmi", "--all", "--force"], capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(store)], capture_output=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(tmp_path / "bundle")], check=True,
                   capture_output=True)
    theirs = _tree(tmp_path / "bundle" / "rootfs")
    mine = _tree(ours)
    # buildah's RUN leaves the files it bind-mounts (empty) and /run behind; BuildKit does not
    for k in BUILDAH_ARTIFACTS:
        if k in theirs and k not in mine and not theirs[k][4]:
            del theirs[k]
    assert sorted(set(theirs) ^ set(mine)) == []
    diffs = {k: (mine[k][:4], theirs[k][:4]) for k in mine if mine[k] != theirs[k]}
    assert diffs == {}
