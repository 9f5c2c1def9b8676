"""`python -m pycontainerd.compose [--address SOCK | -H unix://SOCK] [--namespace NS] COMPOSE-ARGS…` until
pyctr dispatches `pyctr compose`."""

from __future__ import annotations

import os
import sys

from .. import protocol
from .cli import main


def split_globals(argv: list[str]) -> tuple[str, str, list[str]]:
    """pyctr's daemon flags (leading) apart from compose's own arguments."""
    address = os.environ.get("PYCTR_ADDRESS") or os.environ.get("CONTAINERD_ADDRESS") or protocol.DEFAULT_ADDRESS
    namespace = os.environ.get("CONTAINERD_NAMESPACE") or "default"
    rest = list(argv)
    while rest:
        flag = rest[0]
        if flag in ("-H", "--host", "--address", "-n", "--namespace") and len(rest) > 1:
            if flag in ("-n", "--namespace"):
                namespace = rest[1]
            else:
                address = rest[1]
            rest = rest[2:]
        elif flag.startswith(("--address=", "--host=", "--namespace=")):
            key, _, value = flag.partition("=")
            if key == "--namespace":
                namespace = value
            else:
                address = value
            rest = rest[1:]
        else:
            break
    return address, namespace, rest


if __name__ == "__main__":
    addr, ns, args = split_globals(sys.argv[1:])
    sys.exit(main(args, addr, ns))
