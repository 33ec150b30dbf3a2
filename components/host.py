"""One Ascend server as Pulumi sees it: its Docker engine and the NPU hardware a container gets."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import pulumi
import pulumi_docker as docker

from core.connection import machine
from core.plan import ClusterPlan, NodePlan

from .secrecy import hidden


class AscendHost(pulumi.ComponentResource):
    """The node's Docker provider plus the device and driver-mount inputs of its vllm container."""

    provider: docker.Provider
    # Resolves (to None) once the node's Docker is on the machine it was deployed on; fails the
    # run, before anything waiting for it, when it moved. The provider waits for it.
    placed: pulumi.Output[None]
    devices: list[docker.ContainerDeviceArgs]
    volumes: list[docker.ContainerVolumeArgs]

    def __init__(self, name: str, node: NodePlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:AscendHost", name, None, opts)
        # A provider whose host changes is updated in place, and every later delete of what it
        # created goes to the new host: the old container would stay on the old machine, holding
        # its NPUs. So the machine the node was first deployed on is kept in state (a Stash keeps
        # its first input as `output`), and the provider refuses to reach another one.
        here = machine(node.docker_host)
        deployed = pulumi.Stash(
            f"{name}-machine", input=hidden(node, here, "nodes"), opts=pulumi.ResourceOptions(parent=self)
        )
        self.placed = pulumi.Output.all(deployed.output, deployed.urn).apply(
            lambda args: refuse_a_move(node, machine_of=args[0], stash_urn=args[1])
        )
        self.provider = docker.Provider(
            f"{name}-docker",
            host=hidden(node, node.docker_host, "nodes", "ssh"),
            ssh_opts=hidden(node, list(node.docker_ssh_opts), "nodes") if node.docker_ssh_opts else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.placed]),
        )
        self.devices = [
            docker.ContainerDeviceArgs(host_path=d.host_path, container_path=d.container_path, permissions="rwm")
            for d in node.devices
        ]
        self.volumes = [
            docker.ContainerVolumeArgs(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
            for m in node.mounts
        ]
        self.register_outputs({"dockerHost": node.docker_host})


def refuse_a_move(node: NodePlan, machine_of: str, stash_urn: str) -> None:
    """Nothing, when `machine_of` (where the node was first deployed) is where its Docker is now;
    else a refusal naming the key, and the way to move the node."""
    here = machine(node.docker_host)
    if machine_of == here:
        return None
    key = "ip" if _address(here) == node.ip else "dockerHost"
    old, new, container = (
        ("its old address", "the new one", "<container>")
        if node.hides("nodes")
        else (_address(machine_of), _address(here), node.container_name)
    )
    raise pulumi.RunError(
        f"nodes[{node.index}].{key}: node {node.name} was deployed on {old}; Pulumi would now remove its "
        f"containers through {new} and leave them running on {old}, holding its NPUs. Set nodes[{node.index}]."
        f"{key} back, or move the node: remove its containers on {old} yourself (docker rm -f {container}) "
        f"unless {new} is that same machine renumbered or nothing ever ran there, then accept the move "
        f"with: pulumi up --replace '{stash_urn}'"
    )


def _address(docker_machine: str) -> str:
    """A machine (core/connection.py `machine`) as a person names it: its address, or its socket."""
    return docker_machine.removeprefix("ssh://root@").removeprefix("[").removesuffix("]")


def ssh_home() -> Path:
    """The directory ssh means by `~`: the user's entry in the password database, which is not
    always $HOME (under `sudo` without -H they differ)."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def write_known_hosts(*plans: ClusterPlan) -> None:
    """Write the stack's pinned host keys (every group's) where the Docker provider's `ssh` reads them.

    Written on every run, preview included, before any provider connects: the file follows
    `nodes[i].hostKey` and holds nothing else, so there is a single source of trust. Its name
    names the checkout and the stack (core/connection.py), so another checkout's stack of the
    same name keeps its own. Written atomically: a new file, readable by this user only from its
    first byte, renamed over the old one, so ssh never reads half a file, and a link planted at
    the name is replaced, never followed.
    """
    known_hosts = "".join(plan.known_hosts for plan in plans)
    if not known_hosts:
        return
    path = ssh_home() / plans[0].known_hosts_file.removeprefix("~/")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600, whatever the umask.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(known_hosts)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
