"""The daemon address and namespace pyctr talks to when no flag names them: docker's and containerd's
environment variables, else pycontainerd's defaults."""

from __future__ import annotations

import os

from ..protocol import DEFAULT_ADDRESS, DEFAULT_NAMESPACE


def default_address() -> str:
    return os.environ.get("PYCTR_ADDRESS") or os.environ.get("CONTAINERD_ADDRESS") or DEFAULT_ADDRESS


def default_namespace() -> str:
    return os.environ.get("CONTAINERD_NAMESPACE") or DEFAULT_NAMESPACE
