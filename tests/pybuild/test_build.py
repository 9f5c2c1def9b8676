"""End-to-end builds with the pybuild CLI: images read by skopeo/umoci, validated, run by runc."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.support import assert_valid, require

SINGLE = """\
FROM base
ENV GREETING=hello
WORKDIR /app
COPY hello.txt .
COPY sub/ ./sub/
RUN echo "$GREETING from run" > /app/run.txt && cat /app/hello.txt
USER nobody
LABEL org.example.k=v
CMD ["cat", "/app/run.txt"]
"""


def _layout_image(layout: Path, tag: str | None = None) -> tuple[dict, dict, Path]:
    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    if tag is not None:
        assert desc["annotations"]["org.opencontainers.image.ref.name"] == tag
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(desc["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    return manifest, config, layout


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    require("umoci")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True, capture_output=True)
    return bundle / "rootfs"


def runc_run(bundle: Path, state: Path, runtime: str = "runc") -> subprocess.CompletedProcess:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    rt = require(runtime) if runtime == "runc" else runtime
    return subprocess.run([rt, "--root", str(state), "run", "--bundle", str(bundle), f"t{os.getpid()}{time.time_ns()}"],
                          capture_output=True, text=True, timeout=60)


def test_single_stage_image_read_by_skopeo_umoci_and_run_by_runc(builder, tmp_path):
    ctx = builder.ctx(SINGLE, {"hello.txt": "hi file\n", "sub/a.txt": "A\n", "sub/deep/b.txt": "B\n"})
    out = tmp_path / "out"
    r = builder.build(ctx, "-t", "example.com/test:1", "-o", f"type=oci,dest={out},tar=false")
    assert "#" in r.err and "RUN echo" in r.err and "hi file" in r.err  # the RUN's output is streamed
    manifest, config, _ = _layout_image(out, "1")
    assert_valid(manifest, "manifest")
    assert_valid(config, "config")
    c = config["config"]
    assert "GREETING=hello" in c["Env"]
    assert c["WorkingDir"] == "/app" and c["User"] == "nobody" and c["Cmd"] == ["cat", "/app/run.txt"]
    assert c["Labels"] == {"org.example.k": "v"}
    # history: the base's entry + ENV WORKDIR COPY COPY RUN USER LABEL CMD; layers only for the fs steps
    created_by = [h.get("created_by", "") for h in config["history"]]
    assert created_by[1:] == [
        "ENV GREETING=hello", "WORKDIR /app", "COPY hello.txt . # buildkit", "COPY sub/ ./sub/ # buildkit",
        'RUN /bin/sh -c echo "$GREETING from run" > /app/run.txt && cat /app/hello.txt # buildkit',
        "USER nobody", "LABEL org.example.k=v", 'CMD ["cat" "/app/run.txt"]']
    non_empty = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(non_empty) == len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 5
    # skopeo reads it
    require("skopeo")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{out}:1"], check=True, capture_output=True,
                                     text=True).stdout)
    assert len(info["Layers"]) == 5
    # oci-image-tool validates the layout
    require("oci-image-tool")
    v = subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=1", str(out)],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    # umoci unpacks it and runc runs it
    rootfs = umoci_unpack(out, "1", tmp_path / "bundle")
    assert (rootfs / "app" / "hello.txt").read_text() == "hi file\n"
    assert (rootfs / "app" / "sub" / "deep" / "b.txt").read_text() == "B\n"
    assert (rootfs / "app" / "run.txt").read_text() == "hello from run\n"
    st = (rootfs / "app" / "hello.txt").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    p = runc_run(tmp_path / "bundle", tmp_path / "runc-state")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hello from run\n"


def test_multi_stage_copy_from_and_target_pruning(builder, tmp_path):
    df = """\
FROM base AS broken
RUN echo never-built-marker && exit 7

FROM base AS build
RUN mkdir /out && echo built > /out/artifact && echo extra > /out/other

FROM base AS other
RUN echo other > /o.txt

FROM base
COPY --from=build /out/artifact /artifact
COPY --from=other /o.txt /
CMD ["cat", "/artifact"]
"""
    ctx = builder.ctx(df)
    out = tmp_path / "out"
    r = builder.build(ctx, "-o", f"type=local,dest={out}")
    assert "never-built-marker" not in r.err  # the unneeded failing stage never ran
    assert (out / "artifact").read_text() == "built\n"
    assert (out / "o.txt").read_text() == "other\n"
    assert not (out / "out").exists()
    # --target picks a stage: only what it needs
    out2 = tmp_path / "out2"
    r = builder.build(ctx, "--target", "build", "-o", f"type=local,dest={out2}")
    assert (out2 / "out" / "other").read_text() == "extra\n"
    assert "[other" not in r.err
    # the broken stage as target fails
    r = builder.build(ctx, "--target", "broken", check=False)
    assert r.code == 1 and "exit code: 7" in r.err


def test_cache_hits_and_misses(builder, tmp_path):
    df = """\
FROM base
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copied
COPY b.txt /b.txt
RUN echo last > /last
"""
    ctx = builder.ctx(df, {"a.txt": "a1\n", "b.txt": "b1\n"})
    first = builder.build(ctx, "-o", f"type=oci,dest={tmp_path / 'o1'},tar=false")
    assert "CACHED" not in first.err
    t0 = time.monotonic()
    second = builder.build(ctx, "-o", f"type=oci,dest={tmp_path / 'o2'},tar=false")
    elapsed = time.monotonic() - t0
    steps = [line for line in second.err.splitlines() if line.startswith("#") and ("CACHED" in line or "DONE" in line)]
    assert second.err.count(" CACHED") == 5, second.err
    assert "RUN echo one" in second.err
    assert elapsed < 10, elapsed
    assert steps
    m1, c1, _ = _layout_image(tmp_path / "o1")
    m2, c2, _ = _layout_image(tmp_path / "o2")
    assert m1["layers"] == m2["layers"]
    # change b.txt: everything before its COPY is cached, the COPY and after rebuild
    (ctx / "b.txt").write_text("b2\n")
    third = builder.build(ctx, "-o", f"type=oci,dest={tmp_path / 'o3'},tar=false")
    assert third.err.count(" CACHED") == 3, third.err
    blocks = third.err.split("\n\n")
    copy_b = next(b for b in blocks if "COPY b.txt" in b)
    assert "CACHED" not in copy_b and "DONE" in copy_b
    assert "CACHED" in next(b for b in blocks if "COPY a.txt" in b)
    m3, _, _ = _layout_image(tmp_path / "o3")
    assert m3["layers"][:4] == m1["layers"][:4] and m3["layers"][4] != m1["layers"][4]
    # touching without changing content keeps the cache; --no-cache runs everything again
    os.utime(ctx / "a.txt")
    assert builder.build(ctx).err.count(" CACHED") == 5
    assert " CACHED" not in builder.build(ctx, "--no-cache").err


def test_dockerignore_with_exceptions(builder, tmp_path):
    df = "FROM base\nCOPY . /ctx/\n"
    ctx = builder.ctx(df, {
        ".dockerignore": "*.log\n!keep.log\nsecret/\nbuild/**\n!build/dist\n",
        "a.txt": "a", "x.log": "x", "keep.log": "k", "secret/s.txt": "s",
        "build/tmp/t": "t", "build/dist/d": "d",
    })
    out = tmp_path / "out"
    builder.build(ctx, "-o", f"type=local,dest={out}")
    got = sorted(str(p.relative_to(out / "ctx")) for p in (out / "ctx").rglob("*") if p.is_file())
    assert got == [".dockerignore", "Dockerfile", "a.txt", "build/dist/d", "keep.log"]
    # an ignored file changing does not bust the cache
    (ctx / "x.log").write_text("changed")
    assert builder.build(ctx).err.count(" CACHED") == 1


def test_cache_mount_persists_across_builds(builder, tmp_path):
    df = """\
FROM base
ARG N
RUN --mount=type=cache,target=/var/cache/app sh -c 'echo run-$N >> /var/cache/app/log; cat /var/cache/app/log | wc -l > /count'
"""
    ctx = builder.ctx(df)
    o1, o2 = tmp_path / "o1", tmp_path / "o2"
    builder.build(ctx, "--build-arg", "N=1", "-o", f"type=local,dest={o1}")
    builder.build(ctx, "--build-arg", "N=2", "-o", f"type=local,dest={o2}")
    assert (o1 / "count").read_text().strip() == "1"
    assert (o2 / "count").read_text().strip() == "2"
    assert not (o2 / "var" / "cache" / "app").exists()  # the mount point is not in the image


def test_secret_is_never_in_a_layer(builder, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("S3CR3T-VALUE-42")
    df = """\
FROM base
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && wc -c < /run/secrets/tok > /len
RUN --mount=type=secret,id=tok,target=/etc/mysecret test -s /etc/mysecret && echo ok > /ok
"""
    ctx = builder.ctx(df)
    out = tmp_path / "out"
    builder.build(ctx, "--secret", f"id=tok,src={secret}", "-o", f"type=oci,dest={out},tar=false")
    manifest, _, _ = _layout_image(out)
    import gzip

    found = []
    for layer in manifest["layers"]:
        data = gzip.decompress((out / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes())
        assert b"S3CR3T-VALUE-42" not in data
        with tarfile.open(fileobj=__import__("io").BytesIO(data)) as t:
            found += t.getnames()
    assert "len" in found and "ok" in found
    assert not any(n.startswith(("run/secrets", "etc/mysecret")) for n in found), found
    for blob in (out / "blobs" / "sha256").iterdir():
        assert b"S3CR3T-VALUE-42" not in blob.read_bytes()
    for blob in (builder.cache / "oci" / "blobs" / "sha256").iterdir():
        if blob.is_file():
            assert b"S3CR3T-VALUE-42" not in blob.read_bytes()


def test_reproducible_with_source_date_epoch(builder, tmp_path):
    df = """\
FROM base
COPY f.txt /f.txt
RUN mkdir -p /data && echo generated > /data/g && touch /data/now
WORKDIR /srv
CMD ["sh"]
"""
    ctx = builder.ctx(df, {"f.txt": "content\n"})
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    digests = []
    for i in range(2):
        out = tmp_path / f"o{i}"
        builder.build(ctx, "--no-cache", "-o", f"type=oci,dest={out},tar=false", env=env)
        digests.append(json.loads((out / "index.json").read_text())["manifests"][0]["digest"])
        time.sleep(1.1)  # a different wall clock second for the second build
    assert digests[0] == digests[1]
    _, config, _ = _layout_image(tmp_path / "o0")
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert all(h.get("created") in (None, "2023-11-14T22:13:20Z") for h in config["history"][1:])


def test_failing_run_reports_line_output_and_exit_code(builder, tmp_path):
    df = "FROM base\nENV A=1\nRUN echo visible-output-line && exit 3\nRUN echo after\n"
    ctx = builder.ctx(df)
    for dest, opt in ((tmp_path / "out.tar", "type=oci,dest={}"), (tmp_path / "outdir", "type=local,dest={}")):
        r = builder.build(ctx, "-o", opt.format(dest), check=False)
        assert r.code == 1
        assert "visible-output-line" in r.err
        assert "exit code: 3" in r.err
        assert "Dockerfile:3: " in r.err
        assert "echo after" not in r.err.split("ERROR")[0].split("exit 3")[-1]
        assert not dest.exists()
        assert not any(p.name.startswith(f".{dest.name}") for p in tmp_path.iterdir())
        assert "Traceback" not in r.err


@pytest.mark.parametrize("df,msg", [
    ("FROM base\nCOPY nothere.txt /x\n", 'Dockerfile:2: failed to compute cache key'),
    ("FROM base\nFORM x\n", "Dockerfile:2: unknown instruction: FORM"),
    ("FROM base\nCOPY --from=nostage /a /b\n", "Dockerfile:2:"),
])
def test_dockerfile_errors_exit_1_with_line(builder, df, msg):
    r = builder.build(builder.ctx(df), check=False)
    assert r.code == 1 and msg in r.err, r.err
    assert "Traceback" not in r.err


def test_outputs_oci_archive_docker_archive_and_no_output(builder, tmp_path):
    require("skopeo")
    ctx = builder.ctx("FROM base\nRUN echo x > /x\nCMD [\"cat\", \"/x\"]\n")
    oci_tar, docker_tar = tmp_path / "img.tar", tmp_path / "docker.tar"
    builder.build(ctx, "-t", "example.com/a/b:v1", "-o", f"type=oci,dest={oci_tar}")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{oci_tar}"], check=True,
                                     capture_output=True, text=True).stdout)
    assert len(info["Layers"]) == 2
    builder.build(ctx, "-t", "example.com/a/b:v1", "-o", f"type=docker,dest={docker_tar}")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{docker_tar}"], check=True,
                                     capture_output=True, text=True).stdout)
    assert len(info["Layers"]) == 2
    with tarfile.open(docker_tar) as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == ["example.com/a/b:v1"]
    r = builder.build(ctx)
    assert "remain in the build cache" in r.err


def test_runtime_runc_and_pyrunc_give_the_same_layers(builder, tmp_path):
    require("runc")
    df = "FROM base\nRUN echo via-runtime > /r && id -u > /uid\n"
    ctx = builder.ctx(df)
    digests = []
    for rt in ("runc", "pyrunc"):
        out = tmp_path / rt
        builder.build(ctx, "--no-cache", "--runtime", rt, "-o", f"type=oci,dest={out},tar=false",
                      env={"SOURCE_DATE_EPOCH": "1700000000"})
        digests.append(_layout_image(out)[0]["layers"][-1]["digest"])
    assert digests[0] == digests[1]


def test_copy_chown_chmod_add_tar_heredoc_and_workdir(builder, tmp_path):
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"from the tarball\n"
        ti = tarfile.TarInfo("pkg/inside.txt")
        ti.size = len(data)
        ti.uid = 1234
        t.addfile(ti, io.BytesIO(data))
    df = """\
FROM base
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group
COPY --chown=app:app --chmod=640 f.txt /owned/f.txt
COPY --chown=1001 f.txt /numeric/
ADD pkg.tar.gz /opt/
COPY <<EOF /etc/inline.conf
key=value
EOF
WORKDIR /srv/deep
USER app
WORKDIR /home/app/work
RUN pwd > /tmp/pwd
"""
    ctx = builder.ctx(df, {"f.txt": "F\n", "pkg.tar.gz": buf.getvalue()})
    out = tmp_path / "out"
    builder.build(ctx, "-o", f"type=local,dest={out}")
    st = (out / "owned" / "f.txt").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640)
    st = (out / "numeric" / "f.txt").stat()
    assert (st.st_uid, st.st_gid) == (1001, 1001)
    assert (out / "opt" / "pkg" / "inside.txt").read_text() == "from the tarball\n"
    assert (out / "opt" / "pkg" / "inside.txt").stat().st_uid == 1234
    assert (out / "etc" / "inline.conf").read_text() == "key=value\n"
    assert (out / "srv" / "deep").is_dir()
    assert (out / "home" / "app" / "work").stat().st_uid == 1000
    assert (out / "tmp" / "pwd").read_text() == "/home/app/work\n"


def test_independent_stages_run_in_parallel(builder, tmp_path):
    df = """\
FROM base AS a
RUN sleep 1.5 && date +%s > /a

FROM base AS b
RUN sleep 1.5 && date +%s > /b

FROM base
COPY --from=a /a /a
COPY --from=b /b /b
"""
    ctx = builder.ctx(df)
    t0 = time.monotonic()
    builder.build(ctx, "-o", f"type=local,dest={tmp_path / 'out'}")
    assert time.monotonic() - t0 < 3.0 + 2.5  # serial would be >= 3s of sleeps plus overhead
    a = int((tmp_path / "out" / "a").read_text())
    b = int((tmp_path / "out" / "b").read_text())
    assert abs(a - b) <= 1


def test_copy_fallback_without_overlay(builder, tmp_path):
    df = "FROM base\nRUN rm /bin/vi && echo new > /new\nCOPY f /f\n"
    ctx = builder.ctx(df, {"f": "f\n"})
    out = tmp_path / "out"
    builder.build(ctx, "-o", f"type=local,dest={out}", env={"PYBUILD_SNAPSHOTTER": "copy"})
    assert (out / "new").read_text() == "new\n" and (out / "f").read_text() == "f\n"
    assert not (out / "bin" / "vi").exists() and (out / "bin" / "sh").exists()
    # the same deletion through overlay gives the same tree
    out2 = tmp_path / "out2"
    builder.build(ctx, "--no-cache", "-o", f"type=local,dest={out2}")
    assert not (out2 / "bin" / "vi").exists()


def test_run_heredocs_mounts_network_and_metadata(builder, tmp_path):
    furl = tmp_path / "furl.txt"
    furl.write_text("from a file url\n")
    df = f"""\
ARG V=3
FROM base AS helper
RUN mkdir /h && echo helper > /h/file
ONBUILD RUN echo onbuild-ran > /onbuild

FROM helper AS child

FROM base
ARG V
SHELL ["/bin/sh", "-ec"]
RUN <<EOT
echo heredoc-line-1 > /hd
echo "v=$V" >> /hd
EOT
RUN <<EOT
#!/bin/sh
echo shebang-script > /sb
EOT
COPY src/*.go /gosrc/
COPY --from=child /onbuild /onbuild
RUN --network=none cat /proc/net/dev | grep -c : > /ifaces
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/y && ls /scratch > /tmpfsls
RUN --mount=type=bind,from=helper,source=/h,target=/mnt/h cat /mnt/h/file > /from-helper
RUN --mount=type=bind,source=src,target=/ctxsrc,rw cat /ctxsrc/a.go > /from-ctx && echo w > /ctxsrc/new
ADD file://{furl} /furl.txt
EXPOSE 80/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /hd"]
"""
    ctx = builder.ctx(df, {"src/a.go": "A\n", "src/b.go": "B\n", "src/c.txt": "C\n"})
    out = tmp_path / "out"
    builder.build(ctx, "-o", f"type=oci,dest={out},tar=false")
    _, config, _ = _layout_image(out)
    c = config["config"]
    assert c["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}} and c["Volumes"] == {"/data": {}}
    assert c["StopSignal"] == "SIGTERM" and c["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert c["Entrypoint"] == ["/bin/sh", "-c"] and c["Cmd"] == ["cat /hd"]
    local = tmp_path / "local"
    builder.build(ctx, "-o", f"type=local,dest={local}")
    assert (local / "hd").read_text() == "heredoc-line-1\nv=3\n"
    assert (local / "sb").read_text() == "shebang-script\n"
    assert sorted(p.name for p in (local / "gosrc").iterdir()) == ["a.go", "b.go"]
    assert (local / "onbuild").read_text() == "onbuild-ran\n"
    assert (local / "ifaces").read_text().strip() == "1"  # only lo in an empty netns
    assert (local / "tmpfsls").read_text() == "y\n" and not (local / "scratch").exists()
    assert (local / "from-helper").read_text() == "helper\n" and not (local / "mnt").exists()
    assert (local / "from-ctx").read_text() == "A\n" and not (ctx / "src" / "new").exists()
    assert (local / "furl.txt").read_text() == "from a file url\n"


def test_concurrent_builds_share_a_cache(builder, tmp_path):
    import threading

    ctx = builder.ctx("FROM base\nCOPY f /f\nRUN echo shared > /s\n", {"f": "f\n"})
    results = []

    def one(i: int) -> None:
        results.append(builder.build(ctx, "-o", f"type=oci,dest={tmp_path / f'o{i}.tar'}", check=False))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.code for r in results] == [0, 0, 0], [r.err for r in results]
    assert builder.build(ctx).err.count(" CACHED") == 2


def test_tty_progress_and_quiet(builder, tmp_path):
    ctx = builder.ctx("FROM base\nRUN echo tty-$((40+2))-hidden\n")
    r = builder.build(ctx, "--progress", "tty")
    assert "FINISHED" in r.err and "[+] Building" in r.err and "\n#2 " not in r.err
    r = builder.build(ctx, "-q")
    assert r.out.strip().startswith("sha256:") and r.err == ""
    r = builder.build(builder.ctx("FROM base\nRUN echo shown-on-failure; exit 4\n", name="bad"), "--progress", "tty",
                      check=False)
    assert r.code == 1 and "shown-on-failure" in r.err


def test_copy_parents_and_exclude(builder, tmp_path):
    df = """\
FROM base
COPY --parents a/b/x.txt /p/
COPY --exclude=*.md docs/ /d/
COPY --exclude=**/*.md a /e/
"""
    ctx = builder.ctx(df, {"a/b/x.txt": "1", "a/b/y.md": "2", "docs/README.md": "r", "docs/keep.txt": "k"})
    out = tmp_path / "out"
    builder.build(ctx, "-o", f"type=local,dest={out}")
    assert (out / "p" / "a" / "b" / "x.txt").read_text() == "1"
    assert sorted(p.name for p in (out / "d").iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in (out / "e" / "b").iterdir()) == ["x.txt"]


def test_killed_build_leaves_nothing_mounted_after_the_next_build(builder, tmp_path):
    import signal

    ctx = builder.ctx("FROM base\nRUN echo started && sleep 30\n")
    cmd = [*__import__("tests.pybuild.conftest", fromlist=["PYBUILD"]).PYBUILD, "build", "--progress", "plain",
           "--cache-dir", str(builder.cache), "--build-context", f"base=oci-layout://{builder.base}:latest", str(ctx)]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in p.stderr:
            if "started" in line:
                break
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    time.sleep(0.5)
    builder.build(builder.ctx("FROM base\nRUN echo next\n", name="ctx2"))
    assert not [d for d in (builder.cache / "tmp").iterdir()]


def test_cache_mount_sharing_locked_serialises_parallel_stages(builder, tmp_path):
    df = """\
FROM base AS one
RUN --mount=type=cache,id=shared-c,target=/c,sharing=locked echo start >> /c/log && sleep 1 && echo end >> /c/log

FROM base AS two
RUN --mount=type=cache,id=shared-c,target=/c,sharing=locked echo start >> /c/log && sleep 1 && echo end >> /c/log

FROM base
COPY --from=one /etc/passwd /one
COPY --from=two /etc/passwd /two
RUN --mount=type=cache,id=shared-c,target=/c cat /c/log > /log
"""
    out = tmp_path / "out"
    builder.build(builder.ctx(df), "-o", f"type=local,dest={out}")
    assert (out / "log").read_text().split() == ["start", "end", "start", "end"]


def test_add_archives_every_compression_and_url_refused(builder, tmp_path):
    import io

    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        data = b"payload\n"
        ti = tarfile.TarInfo("inner/file.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    import bz2
    import gzip
    import lzma

    files = {"a.tar": tar_bytes, "b.tar.gz": gzip.compress(tar_bytes), "c.tar.bz2": bz2.compress(tar_bytes),
             "d.tar.xz": lzma.compress(tar_bytes), "e.tar.zst": zstandard.ZstdCompressor().compress(tar_bytes),
             "f.gz": gzip.compress(b"not a tar\n")}
    df = "FROM base\n" + "".join(f"ADD {n} /x/{n.split('.')[0]}/\n" for n in files)
    out = tmp_path / "out"
    builder.build(builder.ctx(df, files), "-o", f"type=local,dest={out}")
    for n in "abcde":
        assert (out / "x" / n / "inner" / "file.txt").read_text() == "payload\n"
    assert (out / "x" / "f" / "f.gz").read_bytes() == files["f.gz"]  # compressed non-tar: copied as is
    r = builder.build(builder.ctx("FROM base\nADD https://example.com/x /x\n", name="url"), check=False)
    assert r.code == 1 and "Dockerfile:2: not supported yet" in r.err


def test_named_local_build_context(builder, tmp_path):
    extra = tmp_path / "extra"
    (extra / "lib").mkdir(parents=True)
    (extra / "lib" / "l.txt").write_text("from the named context\n")
    df = "FROM base\nCOPY --from=deps lib/l.txt /l.txt\nRUN --mount=type=bind,from=deps,target=/deps cat /deps/lib/l.txt > /m\n"
    out = tmp_path / "out"
    builder.build(builder.ctx(df), "--build-context", f"deps={extra}", "-o", f"type=local,dest={out}")
    assert (out / "l.txt").read_text() == (out / "m").read_text() == "from the named context\n"
    (extra / "lib" / "l.txt").write_text("changed\n")
    r = builder.build(builder.ctx(df), "--build-context", f"deps={extra}", "-o", f"type=local,dest={tmp_path / 'o2'}")
    assert " CACHED" not in r.err and (tmp_path / "o2" / "l.txt").read_text() == "changed\n"
