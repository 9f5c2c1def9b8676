"""Container networking for pycontainerd: docker-style networks over the CNI plugins.

Modules, smallest first:
  ports      -p/-P parsed as docker's nat.ParsePortSpecs; host-port choice; `docker port` lines
  hosts      /etc/hosts and /etc/resolv.conf contents (rewritten in place: they are bind-mounted)
  cni        the CNI protocol (ADD/DEL/CHECK of a conflist's plugins, cached results)
  isolation  docker's isolation between bridge networks (DROP pairs in CNI-ADMIN)
  store      networks/<name>.json and endpoint records under the daemon root, flock'd
  manager    NetworkManager: create/list/inspect/remove/prune, attach/detach, cleanup_stale, purge
  netns      the named netns a container joins (`ip netns add pyctr-<id12>`)
  container  prepare/release/network_settings from a container's docker document (HostConfig)
  service    the daemon's Networks/Volumes services and TaskManager create/release hooks

Defaults (chosen to coexist with docker's docker0 172.17/16, podman's 10.88-89/16 and nerdctl's
10.4/16): the default `bridge` network is the device `pyctr0` on 10.213.0.0/24; user networks get
/24s from 10.213.0.0/16 (skipping any subnet the host already routes) on `pyctr-<id9>` bridges.
Plugins: Debian's containernetworking-plugins in /usr/lib/cni (bridge, host-local, firewall,
portmap, loopback). Published ports answer on 127.0.0.1 too: portmap's snat mode sets
route_localnet on the bridge and DNATs loopback traffic in OUTPUT, so no userland proxy is needed.
"""

from . import container, netns
from .manager import Attachment, NetworkManager
from .ports import PortSpec, PublishedPort, parse_port_spec, parse_publish

__all__ = ["container", "netns", "Attachment", "NetworkManager", "PortSpec", "PublishedPort", "parse_port_spec",
           "parse_publish"]
