"""After the containers: prove the service works, on the head node.

Readiness waits (bounded) for /health and the model listing; then every node's supervisor must
see the head's API and its peers (`checks/group_view.py`); the smoke test sends the tutorial's
request; the benchmark and the accuracy run happen on demand. Each is a step judged inside its
own resource (see `nodecommand`): a failure fails that resource and runs again on the next
`pulumi up`. All re-run when a container is replaced; the benchmark and the accuracy run also
when their own settings change, and for nothing else.
"""

from __future__ import annotations

import pulumi

from checks import group_view, servicechecks
from core.plan import ClusterPlan, NodePlan

from .nodecommand import node_step, report


class ServiceVerification(pulumi.ComponentResource):
    """Readiness, the smoke request and, when enabled, the benchmark and the accuracy run, one after
    another on the head node; `outputs` is the `verification` stack output."""

    outputs: dict[str, pulumi.Output]
    # Every node serves: what a check of the whole service (through the front door) waits for.
    readiness: pulumi.Resource

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        containers: list[pulumi.Resource],
        container_ids: list[pulumi.Output[str]],
        front_door: pulumi.CustomResource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:ServiceVerification", name, None, opts)
        head, url = plan.head, plan.head_local_url
        secrets = {"VLLM_API_KEY": plan.api_key} if plan.api_key else None
        # A new container id means a new service to verify; an unchanged stack re-runs nothing.
        replaced = pulumi.Output.all(*container_ids)

        def on_head(step: str, spec: dict, after: list[pulumi.Resource], triggers: list | None = None):
            return node_step(
                f"{name}-{step}",
                step,
                {"node": head.name, **spec},
                [head],
                ssh_private_key=plan.ssh_private_key,
                secrets=secrets,
                triggers=triggers or [replaced],
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )

        v = plan.verify
        readiness = on_head(
            "readiness",
            {
                "url": url,
                "servedName": plan.served_model_name,
                "timeoutSeconds": v.readiness_timeout_seconds,
                "intervalSeconds": v.readiness_interval_seconds,
                "container": head.container_name,
                "stack": plan.stack,
            },
            containers,
        )
        self.readiness = readiness
        outputs: dict[str, pulumi.Output] = {"readyAfterSeconds": report(readiness).apply(lambda r: r["result"])}
        last = readiness
        for node, container_id in zip(plan.nodes, container_ids, strict=True) if node_supervised(plan) else ():
            node_step(
                f"{node.name}-{group_view.CHECK}",
                group_view.CHECK,
                group_view_spec(plan, node),
                [node],
                ssh_private_key=plan.ssh_private_key,
                # The group is replaced as a whole: the node's own container tells, with one edge.
                triggers=[container_id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[readiness]),
            )

        if v.smoke_test:
            # The tutorial's request as a client sends it: through the front door, which a new
            # front door container proves again.
            door = [front_door] if front_door else []
            smoke = on_head(
                "smoke-test",
                {"url": plan.client_local_url, "request": plan.smoke_request},
                [last, *door],
                triggers=[replaced, *(d.id for d in door)],
            )
            outputs["smokeTest"] = report(smoke).apply(
                lambda r: {
                    "text": r["result"]["text"],
                    "latencyMs": r["result"]["latency_ms"],
                    "completionTokens": r["result"]["completion_tokens"],
                }
            )
            last = smoke

        in_head = {"container": head.container_name, "servedName": plan.served_model_name, "url": url}
        if plan.benchmark.enabled:
            settings = plan.benchmark.model_dump(by_alias=True)
            spec = {**in_head, "model": plan.model, "settings": settings, "stack": plan.stack}
            bench = on_head("benchmark", spec, [last])
            result_file = servicechecks.benchmark_result_file(plan.benchmark, plan.stack)
            outputs["benchmark"] = report(bench).apply(lambda r: {**r["result"], "resultFile": result_file})
            last = bench

        if plan.accuracy.enabled:
            spec = {**in_head, "settings": plan.accuracy.model_dump(by_alias=True)}
            accuracy = on_head("accuracy", spec, [last])
            outputs["accuracy"] = report(accuracy).apply(lambda r: r["result"])

        self.outputs = outputs
        self.register_outputs(outputs)


def node_supervised(plan: ClusterPlan) -> bool:
    return plan.head.supervisor_url is not None


def group_view_spec(plan: ClusterPlan, node: NodePlan) -> dict:
    return {
        "node": node.name,
        "url": f"{node.supervisor_url}/metrics",
        "head": plan.head.ip,
        "apiPort": plan.port,
        "peers": {n.name: n.ip for n in plan.nodes if n is not node},
        "metricsPort": node.supervisor_port,
        # The supervisors learn that the group serves at their next poll.
        "waitSeconds": 30,
    }
