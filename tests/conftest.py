"""Fixtures shared by every tool's tests; plain helpers live in support.py."""

from pathlib import Path

import pytest

from tests.support import make_busybox_rootfs


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    return make_busybox_rootfs(tmp_path / "rootfs")
