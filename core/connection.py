"""How the deploying machine reaches each node: the Docker provider's `ssh` options and the
stack's pinned host keys.

Kept apart from the plan's group: changing the way in (user, port, options, keys) updates the
steps and the providers, and must never replace the group, so the fingerprint reads only `machine`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from .config import PROJECT

# The checkout the program runs from (the directory of Pulumi.yaml). Two checkouts on one machine
# with a stack of the same name (two sites' `prod`) must never overwrite each other's pins.
CHECKOUT = Path(__file__).resolve().parent.parent


def known_hosts_file(stack: str, checkout: Path = CHECKOUT) -> str:
    """The stack's pinned host keys, per project checkout and stack: `~/.ssh/deepseek-r1-ascend-
    <stack>-<8 hex digits naming the checkout>.known_hosts`."""
    tag = hashlib.sha256(str(checkout).encode()).hexdigest()[:8]
    return f"~/.ssh/{PROJECT}-{stack}-{tag}.known_hosts"


def known_hosts_line(docker_host: str, host_key: str | None) -> str | None:
    url = urlsplit(docker_host)
    if url.scheme != "ssh" or not host_key:
        return None
    host = url.hostname if url.port in (None, 22) else f"[{url.hostname}]:{url.port}"
    return f"{host} {host_key}"


def docker_ssh_opts(docker_host: str, pinned: bool, stack: str, site_opts: list[str]) -> tuple[str, ...]:
    """Non-interactive SSH for the Docker provider, pinned to the node's hostKey when it has one.

    ssh keeps the first value it reads for an option, so these come before the site's sshOpts:
    those can add options (a jump host, an identity file) but not loosen the host key check.
    """
    if not docker_host.startswith("ssh://"):
        return tuple(site_opts)
    # Keepalives carry the long silent image pulls through NAT and firewall idle timeouts.
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30"]
    if pinned:
        opts += ["-o", f"UserKnownHostsFile={known_hosts_file(stack)}", "-o", "GlobalKnownHostsFile=/dev/null"]
    return tuple(opts + site_opts)


def machine(docker_host: str) -> str:
    """The machine a Docker URL reaches, without the way in: user and port are connection settings,
    and changing them must not replace the group. Spelled `ssh://root@<host>`, as the default URL
    is, so that a group deployed with the defaults keeps its fingerprint."""
    if not docker_host.startswith("ssh://"):
        return docker_host
    address = docker_host.removeprefix("ssh://").rsplit("@", 1)[-1]
    host = address[: address.index("]") + 1] if address.startswith("[") else address.split(":")[0]
    return f"ssh://root@{host}"
