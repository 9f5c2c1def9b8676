"""The daemon's services, one module each, named as containerd's; each has `register(daemon)`."""
