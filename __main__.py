"""DeepSeek-R1-W8A8 on vllm-ascend: read the stack config, plan every node, declare the groups."""

import pulumi

from components.cluster import VllmCluster
from components.observability import Observability
from components.router import RoutedGroups
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
if deployment.router is None:
    cluster = VllmCluster("deepseek-r1", plan, deployment.front_door)
    hosts = cluster.hosts
    pulumi.export("nodes", cluster.node_summaries())
    pulumi.export("verification", cluster.verification.outputs)
else:
    # Several data-parallel groups behind vllm-router, replaced one at a time.
    routed = RoutedGroups("deepseek-r1", deployment)
    hosts = routed.hosts
    pulumi.export("groups", routed.summaries())
    checked = {"frontDoorSmokeTest": routed.smoke, **({"benchmark": routed.benchmark} if routed.benchmark else {})}
    pulumi.export("verification", checked)
if observability is not None:
    Observability("observability", deployment.groups, observability, hosts)
    pulumi.export("prometheusUrl", observability.prometheus_url)
    if observability.grafana_url:
        pulumi.export("grafanaUrl", observability.grafana_url)

pulumi.export("endpoint", hidden(plan.head, deployment.endpoint, "nodes", "serve", "frontDoor"))
pulumi.export("servedModelName", hidden(plan.head, plan.served_model_name, "model"))
smoke = plan.smoke_curl(with_api_key=config.api_key is not None, endpoint=deployment.endpoint)
pulumi.export("smokeTest", hidden(plan.head, smoke, "nodes", "serve", "model", "frontDoor"))
