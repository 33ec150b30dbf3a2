"""One node's vllm process: the pinned image and the container running `vllm serve` in its role."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_docker as docker

from core.config import AUTO_NIC
from core.connection import machine
from core.plan import LABEL_PREFIX, NIC_ENV, NodePlan

from .host import AscendHost
from .secrecy import hidden

# How the engine names "the saved state has init errors" among the paths of `replace_on_changes`
# (pulumi/pulumi step_generator.go: initErrorSpecialKey, applyReplaceOnChanges).
INIT_ERRORS = "#initerror"


class VllmServer(pulumi.ComponentResource):
    """One node's pinned image and the container running `vllm serve` in the node's role (single,
    head or headless), on the node's own Docker engine.

    Declared in two steps: the image first, then (`start`) the container. Between them the checks
    that read the pulled image are declared, and the container waits for them, so every node's
    image is judged before any node's container is created or replaced."""

    image: docker.RemoteImage
    container: docker.Container
    staged: pulumi.Resource | None

    def __init__(self, name: str, node: NodePlan, host: AscendHost, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:VllmServer", name, None, opts)
        self._name, self._node, self._host = name, node, host
        on_host = pulumi.ResourceOptions(parent=self, provider=host.provider)
        # Seven hundred gigabytes of weights depend on this image: never delete it from the host
        # just because the stack moved on to another tag.
        self.image = docker.RemoteImage(
            f"{name}-image",
            name=hidden(node, node.image, "image"),
            keep_locally=True,
            opts=pulumi.ResourceOptions.merge(
                on_host,
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create=f"{node.image_pull_timeout_minutes}m"),
                    # A node accepted on another machine (see AscendHost) pulls the image there.
                    replacement_trigger=hidden(node, machine(node.docker_host), "nodes"),
                ),
            ),
        )

    def start(
        self,
        group_fingerprint: str,
        nic: pulumi.Input[str],
        driver: pulumi.Output[str] | None = None,
        image_facts: pulumi.Output[dict] | None = None,
        after: list[pulumi.Resource] | None = None,
        stage: Callable[[pulumi.Resource], pulumi.Resource] | None = None,
    ) -> None:
        """The container. `nic` is the node's NIC (discovered by the preflight for `nic: auto`);
        `driver` is the driver version and `image_facts` the image's CANN and SoC the node's checks
        found; the container waits for the resources in `after` and for what `stage` returns when
        given the pulled image (the weights staging)."""
        name, node, host = self._name, self._node, self._host
        on_host = pulumi.ResourceOptions(parent=self, provider=host.provider)
        self.staged = stage(self.image) if stage else None
        envs = pulumi.Output.from_input(nic).apply(lambda nic_name: container_env(node, nic_name))
        labels = [docker.ContainerLabelArgs(label=k, value=hidden(node, v, "model", "nodes")) for k, v in node.labels]
        if driver is not None:
            labels.append(docker.ContainerLabelArgs(label=LABEL_PREFIX + "driver", value=driver))
        if image_facts is not None:
            for fact in ("cann", "soc"):
                value = image_facts.apply(lambda facts, fact=fact: facts[fact])
                labels.append(docker.ContainerLabelArgs(label=LABEL_PREFIX + fact, value=value))
        uploads = [
            docker.ContainerUploadArgs(file=u.path, content=u.content, executable=u.executable) for u in node.uploads
        ]
        self.container = docker.Container(
            f"{name}-vllm",
            name=hidden(node, node.container_name, "nodes"),
            image=self.image.image_id,
            command=hidden(node, list(node.argv), "serve", "model", "nodes"),
            # The group supervisor runs the command (core/supervision.py); none without supervision.
            entrypoints=list(node.entrypoint) or None,
            uploads=hidden(node, uploads, "serve", "model", "nodes") if uploads else None,
            envs=pulumi.Output.secret(envs) if node.secret_env or node.hides("env", "model", "nodes") else envs,
            devices=hidden(node, host.devices, "nodes"),
            volumes=hidden(node, host.volumes, "nodes", "model"),
            network_mode="host",
            shm_size=node.shm_bytes // (1024 * 1024),
            privileged=node.privileged,
            restart=node.restart,
            must_run=True,
            stop_timeout=node.docker_stop_seconds,
            destroy_grace_seconds=node.stop_grace_seconds,
            labels=labels,
            opts=pulumi.ResourceOptions.merge(
                on_host,
                pulumi.ResourceOptions(
                    # The NPUs and host ports are held by the old container until it is gone.
                    delete_before_replace=True,
                    depends_on=[*(after or []), *([self.staged] if self.staged else [])],
                    # A DP group restarts as a whole: any shared change replaces every node.
                    replacement_trigger=group_fingerprint,
                    # A container whose upload or start failed is saved all the same, with init
                    # errors, and the next up would only update it, never start it. The engine's
                    # key for those errors makes that next up replace it instead; no other change.
                    replace_on_changes=[INIT_ERRORS],
                ),
            ),
        )
        self.register_outputs({"containerName": self.container.name, "imageId": self.image.image_id})


def container_env(node: NodePlan, nic: str) -> list[str]:
    return [f"{k}={nic if k in NIC_ENV and v == AUTO_NIC else v}" for k, v in node.env]
