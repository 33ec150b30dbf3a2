"""DeepSeek-R1-W8A8 on vllm-ascend: read the stack config, plan every node, declare the cluster."""

import pulumi

from components.cluster import VllmCluster
from components.observability import Observability
from components.secrecy import hidden
from core.config import ConfigError
from core.deployment import plan_deployment
from core.stack import config_from_pulumi

try:
    config = config_from_pulumi()
except ConfigError as error:
    # Nothing has been declared yet: a bad stack never half-deploys.
    raise pulumi.RunError(str(error)) from None

deployment = plan_deployment(config, stack=pulumi.get_stack())
plan, observability = deployment.cluster, deployment.observability
cluster = VllmCluster("deepseek-r1", plan, deployment.front_door)
if observability is not None:
    Observability("observability", plan, observability, cluster.hosts)
    pulumi.export("prometheusUrl", observability.prometheus_url)
    if observability.grafana_url:
        pulumi.export("grafanaUrl", observability.grafana_url)

pulumi.export("endpoint", cluster.endpoint)
pulumi.export("servedModelName", hidden(plan.head, plan.served_model_name, "model"))
pulumi.export("nodes", cluster.node_summaries())
pulumi.export(
    "smokeTest", hidden(plan.head, plan.smoke_curl(with_api_key=config.api_key is not None), "nodes", "serve", "model")
)
pulumi.export("verification", cluster.verification.outputs)
