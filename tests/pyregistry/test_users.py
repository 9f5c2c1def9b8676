"""`pyregistry user add`: bcrypt htpasswd entries that Apache's htpasswd, Distribution and pyregistry accept."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from pyregistry import users
from tests.pyregistry.test_auth_helpers import htpasswd_auth, pyregistry, serve
from tests.support import require


def _verify_with_apache(path: Path, user: str, password: str) -> bool:
    proc = subprocess.run([require("htpasswd"), "-vb", str(path), user, password], capture_output=True, text=True)
    return proc.returncode == 0


def test_add_replace_and_keep_the_rest(tmp_path: Path):
    path = tmp_path / "sub" / "htpasswd"
    users.add(path, "alice", "one", cost=4)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = path.read_text().strip()
    assert line.startswith("alice:$2y$04$") and len(line.split(":", 1)[1]) == 60
    with open(path, "a") as f:
        f.write("# ops team\nbob:$2y$05$/m7LS6q/9ZtW2xYPawjL3.tPqowFQSp3Q6PGIJpHcXQNXTTMkgp0u\n")
    users.add(path, "alice", "two", cost=4)
    text = path.read_text().splitlines()
    assert [ln.split(":")[0] for ln in text] == ["alice", "# ops team", "bob"]
    assert _verify_with_apache(path, "alice", "two") and not _verify_with_apache(path, "alice", "one")
    assert _verify_with_apache(path, "bob", "p")
    assert not list(tmp_path.glob("sub/.tmp-*"))  # the rewrite left no temp file


def test_concurrent_adds_keep_every_user(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "htpasswd"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: users.add(path, f"user{i}", f"pw{i}", cost=4), range(16)))
    names = sorted(line.split(":")[0] for line in path.read_text().splitlines())
    assert names == sorted(f"user{i}" for i in range(16))
    assert _verify_with_apache(path, "user7", "pw7")


def test_default_cost_and_bad_input(tmp_path: Path):
    path = tmp_path / "htpasswd"
    users.add(path, "carol", "s3cret")
    assert path.read_text().startswith("carol:$2y$10$")
    assert _verify_with_apache(path, "carol", "s3cret")
    for name in ("", "a:b", "x\ny", " pad", "#c"):
        with pytest.raises(users.UserError):
            users.add(path, name, "pw", cost=4)
    with pytest.raises(users.UserError, match="72 bytes"):
        users.add(path, "dave", "x" * 73, cost=4)
    with pytest.raises(users.UserError, match="empty"):
        users.add(path, "dave", "", cost=4)
    assert path.read_text().count("\n") == 1


def test_cli_user_add_then_login(tmp_path: Path):
    htpasswd = tmp_path / "htpasswd"
    res = pyregistry("user", "add", "alice", "--htpasswd", str(htpasswd), input="first\n")
    assert res.returncode == 0, res.stderr
    with serve(tmp_path / "reg", htpasswd_auth(htpasswd)) as s:
        assert requests.get(s.url + "/v2/", auth=("alice", "first")).status_code == 200
        # through the server's config, and re-adding replaces the password (the server reloads the file)
        res = pyregistry("user", "add", "alice", "--config", str(s.config), input="second\n")
        assert res.returncode == 0, res.stderr
        assert requests.get(s.url + "/v2/", auth=("alice", "second")).status_code == 200
        r = requests.get(s.url + "/v2/", auth=("alice", "first"))
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="pyregistry-test"'
    assert htpasswd.read_text().count("alice:") == 1
    res = pyregistry("user", "add", "bob", "--htpasswd", str(htpasswd), input="")
    assert res.returncode != 0 and res.stderr.startswith("pyregistry: ") and "Traceback" not in res.stderr


def test_distribution_reads_our_htpasswd(tmp_path: Path):
    path = tmp_path / "htpasswd"
    users.add(path, "user", "pass")
    with _distribution_with(tmp_path / "dist3", path) as url:
        assert requests.get(url + "/v2/", auth=("user", "pass")).status_code == 200
        assert requests.get(url + "/v2/", auth=("user", "wrong")).status_code == 401


def _distribution_with(workdir: Path, htpasswd: Path):
    import contextlib
    import signal
    import time

    from tests.support import free_port

    @contextlib.contextmanager
    def cm():
        workdir.mkdir(parents=True)
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                          f"storage:\n  filesystem:\n    rootdirectory: {workdir}/storage\n"
                          f"http:\n  addr: 127.0.0.1:{port}\n  secret: t\n"
                          f"auth:\n  htpasswd:\n    realm: r\n    path: {htpasswd}\n")
        proc = subprocess.Popen([require("docker-registry"), "serve", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    requests.get(url + "/v2/", timeout=2)
                    break
                except requests.RequestException:
                    assert proc.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
                    time.sleep(0.05)
            yield url
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)

    return cm()
