"""The dry run's text: per node, the shell script a person could run by hand for a plan
(`python -m ops.render` prints it for a stack file). Secrets are never printed: the script reads
them from the environment of whoever runs it.
"""

from __future__ import annotations

import shlex

from .config import AUTO_NIC
from .plan import NIC_ENV, ClusterPlan, NodePlan, find_node


def _size(num_bytes: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


# Ends the here-documents that carry the files placed into the container.
_EOF = "DEEPSEEK_R1_ASCEND_FILE"


def docker_run_argv(node: NodePlan) -> list[str]:
    """`docker run` for one node, with env passed by name so values stay in the exports above it;
    `docker create` when files must be placed into the container before it starts."""
    start = ["create"] if node.uploads else ["run", "-d"]
    argv = ["docker", *start, "--name", node.container_name, "--net=host", f"--shm-size={_size(node.shm_bytes)}"]
    argv += ["--restart", node.restart]
    if node.entrypoint:
        argv += ["--entrypoint", shlex.join(node.entrypoint)]
    if node.privileged:
        argv.append("--privileged")
    for device in node.devices:
        spec = (
            device.host_path
            if device.host_path == device.container_path
            else f"{device.host_path}:{device.container_path}"
        )
        argv += ["--device", spec]
    for mount in node.mounts:
        argv += ["-v", f"{mount.host_path}:{mount.container_path}" + (":ro" if mount.read_only else "")]
    for name, _ in node.env:
        argv += ["-e", name]
    for key, value in node.labels:
        argv += ["--label", f"{key}={value}"]
    return argv + [node.image] + list(node.argv)


def _continued(argv: list[str], start_new_line) -> str:
    """Join arguments as one shell command, breaking lines before each option for readability."""
    lines, current = [], []
    for arg in argv:
        if current and start_new_line(arg):
            lines.append(" ".join(current))
            current = []
        current.append(shlex.quote(arg))
    lines.append(" ".join(current))
    return " \\\n  ".join(lines)


def node_script(plan: ClusterPlan, node: NodePlan) -> str:
    ranks = f"{node.ranks.start}-{node.ranks.stop - 1}"
    lines = [
        "#!/bin/sh",
        f"# {plan.stack} / {node.name} ({node.role}): data-parallel ranks {ranks} of "
        f"{len(plan.nodes) * node.dp_local}, Docker host {node.docker_host}",
        "set -eu",
    ]
    if node.nic == AUTO_NIC:
        # The same discovery the preflight does: the interface that holds the node's address.
        lines.append(
            f'nic_name=$(ip -o addr show | awk -v ip={shlex.quote(node.ip)} \'$4 ~ "^" ip "/" {{print $2; exit}}\')'
        )
        lines.append(f'[ -n "$nic_name" ] || {{ echo "no interface holds {node.ip}" >&2; exit 1; }}')
    for name, value in node.env:
        if node.nic == AUTO_NIC and name in NIC_ENV:
            lines.append(f'export {name}="$nic_name"')
        elif name in node.secret_env:
            lines.append(f'export {name}="${{{name}:?set {name} in your environment first}}"')
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    image_and_command = {node.image, node.argv[0]}
    lines.append(_continued(docker_run_argv(node), lambda a: a.startswith("-") or a in image_and_command))
    if node.uploads:
        lines.append("files=$(mktemp -d)")
    for upload in node.uploads:
        lines.append(f'mkdir -p "$files"{shlex.quote(upload.path.rsplit("/", 1)[0])}')
        lines.append(f"cat > \"$files\"{shlex.quote(upload.path)} <<'{_EOF}'\n{upload.content.rstrip()}\n{_EOF}")
        if upload.executable:
            lines.append(f'chmod 0755 "$files"{shlex.quote(upload.path)}')
    if node.uploads:
        name = shlex.quote(node.container_name)
        lines += [f'docker cp "$files/." {name}:/', 'rm -rf "$files"', f"docker start {name}"]
    return "\n".join(lines) + "\n"


def render(plan: ClusterPlan, node_name: str | None = None) -> str:
    nodes = plan.nodes if node_name is None else (find_node(plan, node_name),)
    return "\n".join(node_script(plan, n) for n in nodes)
