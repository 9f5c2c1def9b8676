"""Container networking for pycontainerd: docker-style networks over the CNI plugins, published ports, hosts files."""

from . import container, netns
from .manager import Attachment, NetworkManager
from .ports import PortSpec, PublishedPort, parse_port_spec, parse_publish

__all__ = ["container", "netns", "Attachment", "NetworkManager", "PortSpec", "PublishedPort", "parse_port_spec", "parse_publish"]
