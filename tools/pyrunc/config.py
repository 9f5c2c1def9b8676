"""The default config.json `runc spec` writes (runc 1.1's specconv.Example, kept in pyoci.runtime) and ToRootless."""

from __future__ import annotations

import json
import os

from pyoci.runtime import default_spec


def example() -> dict:
    return default_spec()


def to_rootless(spec: dict) -> dict:
    """As runc's specconv.ToRootless: a user namespace mapping the caller, no netns, /sys bound, no cgroup rules."""
    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})
    mounts = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys":
            m = {"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        else:
            m = dict(m)
            if "options" in m:
                m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
        mounts.append(m)
    new_linux = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
        "namespaces": namespaces,
    }
    new_linux.update({k: v for k, v in linux.items() if k not in ("resources", "namespaces", "uidMappings", "gidMappings")})
    return dict(spec, mounts=mounts, linux=new_linux)


def render(spec: dict) -> bytes:
    """Go's json.MarshalIndent(spec, "", "\\t"): tab indents, no trailing newline."""
    return json.dumps(spec, indent="\t").encode()
