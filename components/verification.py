"""After the containers: prove the service works, on the head node.

Readiness waits (bounded) for /health and the model listing; the smoke test sends the tutorial's
request; the benchmark and the accuracy run happen on demand. All re-run when the containers are
replaced, and the benchmark also when its settings change.
"""

from __future__ import annotations

import pulumi

from checks import servicechecks
from core.plan import ClusterPlan

from .nodecommand import node_command


class ServiceVerification(pulumi.ComponentResource):
    """Readiness, the smoke request and, when enabled, the benchmark and the accuracy run, one after
    another on the head node; `outputs` is the `verification` stack output."""

    outputs: dict[str, pulumi.Output]

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        containers: list[pulumi.Resource],
        container_ids: list[pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:ServiceVerification", name, None, opts)
        head, url = plan.head, plan.head_local_url
        secrets = {"VLLM_API_KEY": plan.api_key} if plan.api_key else None

        def on_head(step: str, script: pulumi.Input[str], after: list[pulumi.Resource], triggers: list):
            return node_command(
                f"{name}-{step}",
                head,
                script,
                ssh_private_key=plan.ssh_private_key,
                secrets=secrets,
                triggers=triggers,
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )

        # A new container id means a new service to verify; an unchanged stack re-runs nothing.
        replaced = [pulumi.Output.all(*container_ids)]
        v = plan.verify
        readiness = on_head(
            "readiness",
            servicechecks.readiness_command(
                url,
                plan.served_model_name,
                v.readiness_timeout_seconds,
                v.readiness_interval_seconds,
                head.container_name,
                plan.stack,
            ),
            containers,
            replaced,
        )
        outputs: dict[str, pulumi.Output] = {
            "readyAfterSeconds": readiness.stdout.apply(servicechecks.ready_after_seconds)
        }
        last = readiness

        if v.smoke_test:
            smoke = on_head("smoke-test", servicechecks.smoke_command(url, plan.smoke_request), [last], replaced)
            result = smoke.stdout.apply(servicechecks.parse_smoke)
            outputs["smokeTest"] = result.apply(
                lambda r: {"text": r.text, "latencyMs": r.latency_ms, "completionTokens": r.completion_tokens}
            )
            last = smoke

        if plan.benchmark.enabled:
            script = servicechecks.benchmark_command(
                head.container_name, plan.model, plan.served_model_name, url, plan.benchmark, plan.stack
            )
            bench = on_head("benchmark", script, [last], replaced + [plan.benchmark.model_dump()])
            outputs["benchmark"] = bench.stdout.apply(servicechecks.parse_benchmark).apply(
                lambda metrics: {
                    **metrics,
                    "resultFile": servicechecks.benchmark_result_file(plan.benchmark, plan.stack),
                }
            )
            last = bench

        if plan.accuracy.enabled:
            script = servicechecks.accuracy_command(head.container_name, plan.served_model_name, url, plan.accuracy)
            accuracy = on_head("accuracy", script, [last], replaced + [plan.accuracy.model_dump()])
            outputs["accuracy"] = accuracy.stdout.apply(servicechecks.parse_accuracy)

        self.outputs = outputs
        self.register_outputs(outputs)
