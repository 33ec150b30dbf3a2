"""The cluster's eyes: Prometheus, its alert rules and Grafana, planned from the same config.

Pure functions only: the scrape targets and their labels come from the cluster plan, and the
files Prometheus and Grafana read (prometheus.yml, rules, datasource, dashboard) are rendered
here as text, so tests can check them with promtool and the components just upload them.
Nothing here feeds the vllm containers: they are planned without it, so no setting of
`observability` can restart the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import yaml

from supervision.protocol import (
    GROUP_RESTARTS,
    GROUP_SERVED,
    HEAD_HEALTHY,
    KV_TRANSFER_FAILURES,
    PEER_UP,
    RESTART_CAPPED,
    VLLM_UP,
)

from .dashboard import DATASOURCE_UID, dashboard
from .defaults import UNSPECIFIED_HOSTS
from .groups import group_configs
from .models import ClusterConfig
from .observability_settings import PROMETHEUS_UID as PROMETHEUS_UID  # for the component and the dry run
from .observability_settings import Alerts
from .plan import ClusterPlan, Mount, NodePlan, url_host
from .router import ROUTER_ROLE, RouterPlan
from .sidecar import Sidecar, sidecar_labels
from .supervision import Upload

NPU_EXPORTER_ROLE = "npu-exporter"
NPU_EXPORTER_PROGRAM = "npu-exporter"

PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
PROMETHEUS_DATA = "/prometheus"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
DASHBOARD_DIR = "/var/lib/grafana/dashboards"
DASHBOARD_FILE = f"{DASHBOARD_DIR}/deepseek-r1-ascend.json"
GRAFANA_PASSWORD_ENV = "GF_SECURITY_ADMIN_PASSWORD"


@dataclass(frozen=True)
class Target:
    job: Literal["vllm", "supervisor", "npu-exporter", "router"]
    address: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ObservabilityPlan:
    node: str
    prometheus_url: str
    grafana_url: str | None
    prometheus_data_dir: str
    targets: tuple[Target, ...]
    containers: tuple[Sidecar, ...]

    @property
    def prometheus(self) -> Sidecar:
        return next(c for c in self.containers if c.role == "prometheus")


def _ranks(node: NodePlan) -> str:
    return f"{node.ranks.start}-{node.ranks.stop - 1}"


def scrape_targets(plan: ClusterPlan, npu_exporter_port: int | None, api_host: str | None = None) -> tuple[Target, ...]:
    """Every endpoint to scrape, labelled with the stack and the node's place in the group, each at
    the address its server listens on: vllm at `api_host` (serve.host when it names one address,
    else the head's ip), the supervisors and npu-exporters at their node's ip.

    Only the head serves vllm's /metrics: headless nodes run no API server.
    """

    def labels(node: NodePlan) -> tuple[tuple[str, str], ...]:
        group = (("group", plan.group),) if plan.group else ()
        # Prefill or decode (core/pd.py): the dashboard splits the latencies by it.
        pd = (("pd_role", plan.kv.role),) if plan.kv else ()
        return (
            ("stack", plan.stack),
            *group,
            *pd,
            ("node", node.name),
            ("role", node.role),
            ("ranks", _ranks(node)),
        )

    head = plan.head
    targets = [Target("vllm", f"{url_host(api_host or head.ip)}:{plan.port}", labels(head))]
    targets += [
        Target("supervisor", f"{url_host(n.ip)}:{n.supervisor_port}", labels(n))
        for n in plan.nodes
        if n.supervisor_port is not None
    ]
    if npu_exporter_port is not None:
        targets += [Target("npu-exporter", f"{url_host(n.ip)}:{npu_exporter_port}", labels(n)) for n in plan.nodes]
    return tuple(targets)


def prometheus_config(targets: tuple[Target, ...], scrape_interval_seconds: int) -> str:
    jobs: dict[str, list[Target]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(target)
    document = {
        "global": {
            "scrape_interval": f"{scrape_interval_seconds}s",
            "evaluation_interval": f"{scrape_interval_seconds}s",
        },
        # Relative to this file, so promtool checks the same pair that Prometheus loads.
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in members],
            }
            for job, members in jobs.items()
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def _quantile(metric: str, window: str) -> str:
    return f'histogram_quantile(0.99, sum by (stack, le) (rate({metric}_bucket{{job="vllm"}}[{window}])))'


def _rule(name: str, expr: str, minutes: int, severity: str, summary: str, meaning: str) -> dict:
    rule = {"alert": name, "expr": expr}
    if minutes:
        rule["for"] = f"{minutes}m"
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": meaning}
    return rule


def alert_rules(alerts: Alerts, npu_metrics: bool, router: bool = False, *, pd: bool = False) -> str:
    """The alert rules, each with what it means for the operator; NPU rules only where an exporter
    runs, the router's only where several groups sit behind one, the KV transfer's only with
    prefill-decode disaggregation."""
    a = alerts
    window = f"{a.latency_minutes}m"
    rules = [
        _rule(
            "VllmApiNotServing",
            # One alert per stack. Silent while the supervisors report that the group has not
            # served in its current generation (the weight load, a heal in progress: those are
            # GroupRestarting's and GroupRestartsCapped's); without supervisors, up alone decides.
            f'(min by (stack, group) (up{{job="vllm"}}) == 0 or max by (stack, group) ({HEAD_HEALTHY}) == 0)'
            f" unless on (stack, group) (max by (stack, group) ({GROUP_SERVED}) == 0)",
            a.not_serving_minutes,
            "critical",
            "{{ $labels.stack }}{{ with $labels.group }}/{{ . }}{{ end }}: the API is not serving",
            "The group served, and now the head's API server does not answer, or answers /health with an "
            "error: no request is served.",
        ),
        _rule(
            "GroupMemberLost",
            f"{VLLM_UP} == 0",
            a.not_serving_minutes,
            "critical",
            "{{ $labels.stack }}: vllm on {{ $labels.node }} (ranks {{ $labels.ranks }}) is down",
            "A member of the data-parallel group is gone; the group cannot serve until it is restarted whole.",
        ),
        _rule(
            "GroupRestarting",
            f"increase({GROUP_RESTARTS}[1h]) >= {a.restarts_per_hour}",
            0,
            "warning",
            "{{ $labels.stack }}: the group restarted {{ $value }} times in the last hour",
            "The supervisor keeps restarting the group: look for the first failing node in its logs.",
        ),
        _rule(
            "GroupRestartsCapped",
            f"{RESTART_CAPPED} == 1",
            0,
            "critical",
            "{{ $labels.stack }}: the supervisor on {{ $labels.node }} stopped restarting the group",
            "Restarts reached their cap; the group stays down until someone fixes the cause and restarts it.",
        ),
        _rule(
            "SupervisorPeerUnreachable",
            f"{PEER_UP} == 0",
            a.not_serving_minutes,
            "critical",
            "{{ $labels.stack }}: the supervisor on {{ $labels.node }} cannot reach {{ $labels.peer }}'s",
            "A node is down, or supervision.metricsPort is blocked between the nodes: a group restart waits "
            "for every peer, so the group cannot heal until they see each other again.",
        ),
        _rule(
            "TtftP99High",
            f"{_quantile('vllm:time_to_first_token_seconds', window)} > {a.ttft_p99_seconds:g}",
            a.latency_minutes,
            "warning",
            "{{ $labels.stack }}: time to first token p99 is {{ $value | humanizeDuration }}",
            f"Time to first token at p99 has stayed above {a.ttft_p99_seconds:g} s: prefill is overloaded.",
        ),
        _rule(
            "InterTokenLatencyP99High",
            f"{_quantile('vllm:inter_token_latency_seconds', window)} > {a.inter_token_p99_seconds:g}",
            a.latency_minutes,
            "warning",
            "{{ $labels.stack }}: inter-token latency p99 is {{ $value | humanizeDuration }}",
            f"Inter-token latency at p99 has stayed above {a.inter_token_p99_seconds:g} s: decoding is slow.",
        ),
        _rule(
            "KvCacheNearlyFull",
            f"vllm:kv_cache_usage_perc > {a.kv_cache_usage:g}",
            a.latency_minutes,
            "warning",
            "{{ $labels.stack }}: KV cache {{ $value | humanizePercentage }} full",
            f"KV cache usage has stayed above {a.kv_cache_usage:.0%}: requests will queue or be preempted.",
        ),
        _rule(
            "QueueGrowing",
            f"deriv(vllm:num_requests_waiting[{a.queue_growing_minutes}m]) > 0 and vllm:num_requests_waiting > 0",
            a.queue_growing_minutes,
            "warning",
            "{{ $labels.stack }}: the request queue keeps growing",
            "More requests arrive than the group finishes: waiting requests have grown for "
            f"{a.queue_growing_minutes} minutes.",
        ),
        _rule(
            "Preemptions",
            "increase(vllm:num_preemptions_total[5m]) > 0",
            0,
            "warning",
            "{{ $labels.stack }}: {{ $value }} requests preempted in 5 minutes",
            "vllm ran out of KV cache and evicted running requests, which recompute later.",
        ),
    ]
    if router:
        processed = "rate(vllm_router_processed_requests_total[10m])"
        rules += [
            _rule(
                "GroupOutOfRouter",
                # Unhealthy as the router sees it, or sent nothing while the others get requests: a
                # group removed from the router keeps its last health value.
                f"max by (stack, worker) (vllm_router_worker_health) == 0 or (sum by (stack, worker) ({processed}) == 0 "
                f"and on (stack) sum by (stack) ({processed}) > 0)",
                a.group_out_of_router_minutes,
                "warning",
                "{{ $labels.stack }}: the router has sent {{ $labels.worker }} nothing for a rollout's time",
                "A group is out of the router for longer than a rollout takes: its containers failed, or a "
                "`pulumi up` stopped between its drain and its return. The other groups carry its load.",
            ),
            _rule(
                "NoGroupServing",
                "max by (stack) (vllm_router_worker_health) == 0",
                a.not_serving_minutes,
                "critical",
                "{{ $labels.stack }}: no group serves behind the router",
                "Every group fails the router's health checks: no request is served.",
            ),
        ]
    if pd:
        rules.append(
            _rule(
                "KvTransferFailed",
                # Any failure, at once: vllm-ascend v0.18.0 answers it with garbage and a 200, so no
                # error rate or latency shows it. An hour's window keeps a single failure in sight.
                f"increase({KV_TRANSFER_FAILURES}[1h]) > 0",
                0,
                "critical",
                "{{ $labels.stack }}: KV transfers failed on {{ $labels.node }}: answers are wrong",
                "vllm logged a failed KV transfer (Mooncake) on this node within the last hour. vllm-ascend "
                "v0.18.0 does not fail such a request: it decodes without the prompt's KV and returns garbage "
                "as a success. Check /etc/hccn.conf, the KV ports and the NPU network between the prefill and "
                "decode nodes; vllm's line is in the node's container log.",
            )
        )
    if npu_metrics:
        rules += [
            _rule(
                "NpuUnhealthy",
                "npu_chip_info_health_status != 1",
                1,
                "critical",
                "{{ $labels.stack }}: NPU {{ $labels.id }} on {{ $labels.node }} is not healthy",
                "The driver reports the chip unhealthy: see `npu-smi info` on the node.",
            ),
            _rule(
                "NpuTemperatureHigh",
                f"npu_chip_info_temperature > {a.npu_temperature_celsius:g}",
                5,
                "warning",
                "{{ $labels.stack }}: NPU {{ $labels.id }} on {{ $labels.node }} at {{ $value }} C",
                f"The chip has stayed above {a.npu_temperature_celsius:g} C: check cooling before it throttles.",
            ),
            _rule(
                "NpuHbmNearlyFull",
                f"npu_chip_info_hbm_used_memory / npu_chip_info_hbm_total_memory > {a.npu_hbm_usage:g}",
                5,
                "warning",
                "{{ $labels.stack }}: NPU {{ $labels.id }} on {{ $labels.node }} HBM "
                "{{ $value | humanizePercentage }} used",
                f"HBM use has stayed above {a.npu_hbm_usage:.0%}, beyond what vllm reserves at start-up.",
            ),
        ]
    return yaml.safe_dump({"groups": [{"name": "deepseek-r1-ascend", "rules": rules}]}, sort_keys=False, width=200)


def grafana_datasource(prometheus_url: str) -> str:
    source = {"name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "url": prometheus_url}
    return yaml.safe_dump(
        {"apiVersion": 1, "datasources": [{**source, "access": "proxy", "isDefault": True, "editable": False}]},
        sort_keys=False,
    )


def grafana_dashboards_provider() -> str:
    provider = {"name": "deepseek-r1-ascend", "type": "file", "options": {"path": DASHBOARD_DIR}}
    return yaml.safe_dump({"apiVersion": 1, "providers": [{**provider, "allowUiUpdates": False}]}, sort_keys=False)


def plan_observability(
    cfg: ClusterConfig, groups: tuple[ClusterPlan, ...], router: RouterPlan | None = None
) -> ObservabilityPlan | None:
    """Prometheus (and Grafana) on observability.node, an npu-exporter on every node when configured;
    every group scraped, and the router."""
    obs = cfg.observability
    if not obs.enabled:
        return None
    plan, nodes = groups[0], [n for g in groups for n in g.nodes]
    host = next((n for n in nodes if n.name == obs.node), plan.head)
    exporter_port = obs.npu_exporter.port if obs.npu_exporter.image else None
    # The alerts and dashboard rows of vllm-router's groups, and of prefill and decode.
    routed, pd = router is not None and router.rolls_out, any(g.kv for g in groups)
    targets: tuple[Target, ...] = ()
    for group, (_, group_cfg) in zip(groups, group_configs(cfg), strict=True):
        api_host = None if group_cfg.api_host in UNSPECIFIED_HOSTS else group_cfg.api_host
        targets += scrape_targets(group, exporter_port, api_host)
    if router is not None and router.container.role == ROUTER_ROLE:
        at = next(n for n in nodes if n.name == router.container.node)
        labels = (("stack", plan.stack), ("node", at.name), ("role", ROUTER_ROLE))
        targets += (Target("router", f"{url_host(at.ip)}:{cfg.router.metrics_port}", labels),)
    # Prometheus and Grafana listen on one address of their node, never on every interface; the
    # URLs (outputs, Grafana's datasource) are that address, which Grafana reaches on the same host.
    listen = obs.listen_address or host.ip
    prometheus_url = f"http://{url_host(listen)}:{obs.prometheus.port}"
    p = obs.prometheus
    containers = [
        Sidecar(
            role="prometheus",
            node=host.name,
            name=f"{plan.stack}-prometheus",
            image=obs.image_ref(p.image),
            argv=(
                f"--config.file={PROMETHEUS_CONFIG_DIR}/prometheus.yml",
                f"--storage.tsdb.path={PROMETHEUS_DATA}",
                f"--storage.tsdb.retention.time={p.retention_days}d",
                f"--web.listen-address={url_host(listen)}:{p.port}",
            ),
            env=(),
            secret_env=frozenset(),
            mounts=(Mount(p.data_dir, PROMETHEUS_DATA, read_only=False),),
            uploads=(
                Upload(
                    f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml", prometheus_config(targets, p.scrape_interval_seconds)
                ),
                Upload(
                    f"{PROMETHEUS_CONFIG_DIR}/rules.yml",
                    alert_rules(obs.alerts, exporter_port is not None, router=routed, pd=pd),
                ),
            ),
            labels=sidecar_labels(plan.stack, host.name, "prometheus"),
        )
    ]
    grafana_url = None
    if obs.grafana.enabled:
        grafana_url = f"http://{url_host(listen)}:{obs.grafana.port}"
        board = dashboard(plan.stack, npu_exporter=exporter_port is not None, router=routed, pd=pd)
        containers.append(
            Sidecar(
                role="grafana",
                node=host.name,
                name=f"{plan.stack}-grafana",
                image=obs.image_ref(obs.grafana.image),
                argv=(),
                env=(
                    # A bare address (Grafana joins it with the port itself).
                    ("GF_SERVER_HTTP_ADDR", listen),
                    ("GF_SERVER_HTTP_PORT", str(obs.grafana.port)),
                    ("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", DASHBOARD_FILE),
                    (GRAFANA_PASSWORD_ENV, cfg.grafana_admin_password or ""),
                ),
                secret_env=frozenset({GRAFANA_PASSWORD_ENV}),
                mounts=(),
                uploads=(
                    Upload(f"{GRAFANA_PROVISIONING}/datasources/prometheus.yaml", grafana_datasource(prometheus_url)),
                    Upload(f"{GRAFANA_PROVISIONING}/dashboards/deepseek-r1-ascend.yaml", grafana_dashboards_provider()),
                    Upload(DASHBOARD_FILE, json.dumps(board, indent=1)),
                ),
                labels=sidecar_labels(plan.stack, host.name, "grafana"),
            )
        )
    if exporter_port is not None:
        containers += [
            Sidecar(
                role=NPU_EXPORTER_ROLE,
                node=n.name,
                name=f"{n.container_name}-npu-exporter",
                image=obs.image_ref(obs.npu_exporter.image),
                # On the node's own address, where Prometheus scrapes it (see scrape_targets).
                argv=(NPU_EXPORTER_PROGRAM, f"-port={exporter_port}", f"-ip={n.ip}", "-updateTime=5"),
                env=(),
                secret_env=frozenset(),
                # The driver read-only and the NPU devices, as vllm gets them; no privileged mode.
                mounts=tuple(m for m in n.mounts if m.read_only),
                uploads=(),
                labels=sidecar_labels(plan.stack, n.name, NPU_EXPORTER_ROLE),
                devices=n.devices,
            )
            for n in nodes
        ]
    return ObservabilityPlan(
        node=host.name,
        prometheus_url=prometheus_url,
        grafana_url=grafana_url,
        prometheus_data_dir=p.data_dir,
        targets=targets,
        containers=tuple(containers),
    )
