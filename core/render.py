"""The dry run's text: per node, the shell script a person could run by hand for a plan
(`python -m ops.render` prints it for a stack file). Secrets are never printed: the script reads
them from the environment of whoever runs it.
"""

from __future__ import annotations

import re
import shlex

from .config import AUTO_NIC
from .deployment import Deployment
from .observability import PROMETHEUS_UID
from .plan import NIC_ENV, ClusterPlan, Device, NodePlan
from .sidecar import SIDECAR_RESTART, Sidecar
from .supervision import Upload


def _size(num_bytes: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


# Ends the here-documents that carry the files placed into the container.
_EOF = "DEEPSEEK_R1_ASCEND_FILE"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def docker_run_argv(node: NodePlan) -> list[str]:
    """`docker run` for one node, with env passed by name so values stay in the exports above it;
    `docker create` when files must be placed into the container before it starts."""
    options = [f"--shm-size={_size(node.shm_bytes)}", "--restart", node.restart]
    if node.docker_stop_seconds is not None:
        options += ["--stop-timeout", str(node.docker_stop_seconds)]
    if node.entrypoint:
        options += ["--entrypoint", shlex.join(node.entrypoint)]
    options += _device_options(node.devices) + (["--privileged"] if node.privileged else [])
    return _docker_argv(node, node.container_name, node.argv, options)


def _device_options(devices: tuple[Device, ...]) -> list[str]:
    options = []
    for device in devices:
        same = device.host_path == device.container_path
        options += ["--device", device.host_path if same else f"{device.host_path}:{device.container_path}"]
    return options


def _docker_argv(c: NodePlan | Sidecar, name: str, command: tuple[str, ...], options: list[str]) -> list[str]:
    argv = ["docker", *(["create"] if c.uploads else ["run", "-d"]), "--name", name, "--net=host", *options]
    for mount in c.mounts:
        argv += ["-v", f"{mount.host_path}:{mount.container_path}" + (":ro" if mount.read_only else "")]
    for env_name, _ in c.env:
        argv += ["-e", env_name]
    for key, value in c.labels:
        argv += ["--label", f"{key}={value}"]
    return argv + [c.image, *command]


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


def _comment(text: str) -> str:
    """A `#` comment line: a line break in it would end the comment and start a command, so every
    control character becomes '?' (validation refuses them already; this holds without it)."""
    return "# " + _CONTROL.sub("?", text)


def node_script(plan: ClusterPlan, node: NodePlan) -> str:
    ranks = f"{node.ranks.start}-{node.ranks.stop - 1}"
    lines = [
        "#!/bin/sh",
        _comment(
            f"{plan.stack} / {node.name} ({node.role}): data-parallel ranks {ranks} of "
            f"{len(plan.nodes) * node.dp_local}, Docker host {node.docker_host}"
        ),
        "set -eu",
    ]
    if node.nic == AUTO_NIC:
        # The same discovery the preflight does: the interface that holds the node's address.
        lines.append(
            f'nic_name=$(ip -o addr show | awk -v ip={shlex.quote(node.ip)} \'$4 ~ "^" ip "/" {{print $2; exit}}\')'
        )
        missing = shlex.quote(f"no interface holds {node.ip}")
        lines.append(f'[ -n "$nic_name" ] || {{ echo {missing} >&2; exit 1; }}')
    for name, value in node.env:
        if node.nic == AUTO_NIC and name in NIC_ENV:
            lines.append(f'export {name}="$nic_name"')
        else:
            lines.append(_export(name, value, node.secret_env))
    image_and_command = {node.image, node.argv[0]}
    lines.append(_continued(docker_run_argv(node), lambda a: a.startswith("-") or a in image_and_command))
    lines += _placed(node.container_name, node.uploads)
    return "\n".join(lines) + "\n"


def _export(name: str, value: str, secret_env: frozenset[str]) -> str:
    if name in secret_env:
        return f'export {name}="${{{name}:?set {name} in your environment first}}"'
    return f"export {name}={shlex.quote(value)}"


def _placed(container: str, uploads: tuple[Upload, ...]) -> list[str]:
    """The files Docker places into a created container, then its start."""
    if not uploads:
        return []
    lines = ["files=$(mktemp -d)"]
    for upload in uploads:
        if _EOF in upload.content.splitlines():
            raise ValueError(f"{upload.path} holds the line {_EOF}, which would end its here-document early")
        lines.append(f'mkdir -p "$files"{shlex.quote(upload.path.rsplit("/", 1)[0])}')
        lines.append(f"cat > \"$files\"{shlex.quote(upload.path)} <<'{_EOF}'\n{upload.content.rstrip()}\n{_EOF}")
        if upload.executable:
            lines.append(f'chmod 0755 "$files"{shlex.quote(upload.path)}')
    name = shlex.quote(container)
    return lines + [f'docker cp "$files/." {name}:/', 'rm -rf "$files"', f"docker start {name}"]


def sidecar_script(deployment: Deployment, c: Sidecar) -> str:
    lines = ["#!/bin/sh", _comment(f"{deployment.cluster.stack} / {c.node}: {c.role}"), "set -eu"]
    if c.role == "prometheus":
        # As `pulumi up` does before the container: Prometheus runs as this user and writes here.
        path = shlex.quote(deployment.observability.prometheus_data_dir)
        lines.append(f"mkdir -p {path} && chown {PROMETHEUS_UID}:{PROMETHEUS_UID} {path}")
    lines += [_export(name, value, c.secret_env) for name, value in c.env]
    argv = _docker_argv(c, c.name, c.argv, ["--restart", SIDECAR_RESTART, *_device_options(c.devices)])
    lines.append(_continued(argv, lambda a: a.startswith("-") or a == c.image))
    lines += _placed(c.name, c.uploads)
    return "\n".join(lines) + "\n"


def render(deployment: Deployment, node_name: str | None = None) -> str:
    """Every container the deployment runs, group by group and node by node: the vllm server, then
    what else runs there (the router, the front door, observability)."""
    scripts = []
    for plan in deployment.groups:
        for node in plan.nodes if node_name is None else [n for n in plan.nodes if n.name == node_name]:
            scripts.append(node_script(plan, node))
            scripts += [sidecar_script(deployment, c) for c in deployment.sidecars if c.node == node.name]
    return "\n".join(scripts)
