"""The Grafana dashboard: serving, cluster and NPU panels over the provisioned Prometheus, and the
groups' and the prefill and decode roles' where the deployment has them.

Queries name metrics only (no Grafana variables), so every one of them also runs as is against
Prometheus' own API, which is how the integration test checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervision.protocol import (
    GROUP_RESTARTS,
    GROUP_SERVED,
    HEAD_HEALTHY,
    KV_TRANSFER_FAILURES,
    RESTART_CAPPED,
    VLLM_UP,
)

# The provisioned datasource's uid; the dashboard refers to it, never to a name a user can rename.
DATASOURCE_UID = "deepseek-prometheus"
DASHBOARD_UID = "deepseek-r1-ascend"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
NO_EXPORTER = "No NPU exporter configured: set observability.npuExporter.image to see the NPUs"


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    description: str


def _quantiles(metric: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f'histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{job="vllm"}}[1m])))', f"p{round(q * 100)}")
        for q in (0.5, 0.9, 0.99)
    )


SERVING = (
    Panel(
        "Requests running and waiting",
        "short",
        (
            ('sum(vllm:num_requests_running{job="vllm"})', "running"),
            ('sum(vllm:num_requests_waiting{job="vllm"})', "waiting"),
        ),
        "Requests in the running batch and in the queue.",
    ),
    Panel(
        "Tokens per second",
        "short",
        (
            ('sum(rate(vllm:prompt_tokens_total{job="vllm"}[1m]))', "prompt"),
            ('sum(rate(vllm:generation_tokens_total{job="vllm"}[1m]))', "generation"),
        ),
        "Prompt (prefill) and generated tokens per second.",
    ),
    Panel("Time to first token", "s", _quantiles("vllm:time_to_first_token_seconds"), "TTFT percentiles over 1 m."),
    Panel("Inter-token latency", "s", _quantiles("vllm:inter_token_latency_seconds"), "Time between output tokens."),
    Panel("End-to-end latency", "s", _quantiles("vllm:e2e_request_latency_seconds"), "Request latency percentiles."),
    Panel("Queue time", "s", _quantiles("vllm:request_queue_time_seconds"), "Time requests wait before running."),
    Panel(
        "KV cache usage",
        "percentunit",
        (('max(vllm:kv_cache_usage_perc{job="vllm"})', "KV cache"),),
        "Share of the KV cache in use; near 100% requests queue or are preempted.",
    ),
    Panel(
        "Preemptions",
        "short",
        (('sum(increase(vllm:num_preemptions_total{job="vllm"}[5m]))', "preempted in 5 m"),),
        "Requests evicted for lack of KV cache.",
    ),
    Panel(
        "Speculative decoding acceptance",
        "percentunit",
        (
            (
                'sum(rate(vllm:spec_decode_num_accepted_tokens_total{job="vllm"}[1m]))'
                ' / sum(rate(vllm:spec_decode_num_draft_tokens_total{job="vllm"}[1m]))',
                "accepted / drafted",
            ),
        ),
        "Share of MTP draft tokens the model accepted.",
    ),
)
CLUSTER = (
    Panel(
        "Group restarts",
        "short",
        ((f"max by (stack) (increase({GROUP_RESTARTS}[1h]))", "restarts in 1 h"),),
        "Whole-group restarts by the supervisors.",
    ),
    Panel(
        "Node state",
        "short",
        (
            (VLLM_UP, "{{node}} vllm up"),
            (HEAD_HEALTHY, "{{node}} head healthy"),
            (GROUP_SERVED, "{{node}} group served"),
            (RESTART_CAPPED, "{{node}} restarts capped"),
            ("up", "{{node}} {{job}} scraped"),
        ),
        "1 = yes, per node: vllm running, head healthy, group served since its last (re)start, restart cap "
        "reached, target scraped.",
    ),
)
NPUS = (
    Panel("NPU utilization", "percent", (("npu_chip_info_utilization", "{{node}} NPU {{id}}"),), "AI core use."),
    Panel(
        "NPU HBM used",
        "percentunit",
        (("npu_chip_info_hbm_used_memory / npu_chip_info_hbm_total_memory", "{{node}} NPU {{id}}"),),
        "vllm claims serve.gpuMemoryUtilization of HBM at start.",
    ),
    Panel("NPU temperature", "celsius", (("npu_chip_info_temperature", "{{node}} NPU {{id}}"),), "Chip temperature."),
    Panel("NPU power", "watt", (("npu_chip_info_power", "{{node}} NPU {{id}}"),), "Chip power draw."),
    Panel("NPU health", "short", (("npu_chip_info_health_status", "{{node}} NPU {{id}}"),), "1 = healthy."),
)
# Several groups behind vllm-router: its view of them (vllm_router_* on router.metricsPort, one
# series per worker URL, a group's head) beside each group's own vllm metrics (label `group`).
ROUTER = (
    Panel(
        "Requests per group (router)",
        "reqps",
        (("sum by (worker) (rate(vllm_router_processed_requests_total[1m]))", "{{worker}}"),),
        "Requests the router sends each group's head, failed attempts included.",
    ),
    Panel(
        "Group health (router)",
        "short",
        (("vllm_router_worker_health", "{{worker}}"),),
        "1 = the router routes to the group; 0 = its health checks fail. A group removed for a rollout "
        "keeps its last value.",
    ),
    Panel(
        "Requests running per group",
        "short",
        (('sum by (group) (vllm:num_requests_running{job="vllm"})', "{{group}}"),),
        "Each group's running batch, from its own vllm.",
    ),
    Panel(
        "Time to first token p99 per group",
        "s",
        (
            (
                'histogram_quantile(0.99, sum by (le, group) (rate(vllm:time_to_first_token_seconds_bucket{job="vllm"}[1m])))',
                "{{group}}",
            ),
        ),
        "TTFT p99 per group over 1 m.",
    ),
    Panel(
        "End-to-end latency p99 per group",
        "s",
        (
            (
                'histogram_quantile(0.99, sum by (le, group) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm"}[1m])))',
                "{{group}}",
            ),
        ),
        "Request latency p99 per group over 1 m.",
    ),
)


def _by_role(metric: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f'histogram_quantile({q}, sum by (le, pd_role) (rate({metric}_bucket{{job="vllm"}}[1m])))',
            f"{{{{pd_role}}}} p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


# Prefill-decode disaggregation: vllm's targets carry `pd_role`, so each role's own work shows
# apart. A prefill instance answers one token per request (its TTFT is the prompt's compute), and
# a decode instance's TTFT is its wait for the KV transfer.
PD = (
    Panel(
        "Time to first token by role",
        "s",
        _by_role("vllm:time_to_first_token_seconds"),
        "Prefill: computing the prompt. Decode: waiting for its KV from the prefill instance, then the first token.",
    ),
    Panel(
        "Inter-token latency by role",
        "s",
        _by_role("vllm:inter_token_latency_seconds"),
        "Decode's work; prefill instances generate a single token and have none.",
    ),
    Panel(
        "KV transfers failed per node",
        "short",
        ((f"sum by (node) (increase({KV_TRANSFER_FAILURES}[5m]))", "{{node}}"),),
        "Failed in 5 m, from vllm's log (the supervisor's count). In vllm-ascend v0.18.0 each one is a "
        "request answered with garbage, not an error: anything above 0 is wrong answers.",
    ),
)
SECTIONS = (("Serving", SERVING), ("Cluster", CLUSTER), ("NPUs per node and chip", NPUS))
GROUPS_SECTION = ("Groups behind the router", ROUTER)
PD_SECTION = ("Prefill and decode", PD)


def _panel(panel: Panel, panel_id: int, x: int, y: int, no_value: str | None) -> dict:
    defaults: dict = {"unit": panel.unit}
    if no_value:
        defaults["noValue"] = no_value
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard(stack: str, npu_exporter: bool, router: bool = False, *, pd: bool = False) -> dict:
    """Without an NPU exporter the NPU panels stay, and say why they are empty; the groups' row only
    with a router, the roles' only with prefill-decode disaggregation."""
    panels: list[dict] = []
    y = 0
    optional = (*([GROUPS_SECTION] if router else []), *([PD_SECTION] if pd else []))
    for title, section in (*SECTIONS[:1], *optional, *SECTIONS[1:]):
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": title, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )
        y += 1
        no_value = NO_EXPORTER if section is NPUS and not npu_exporter else None
        for i, panel in enumerate(section):
            panels.append(_panel(panel, len(panels) + 1, (i % 3) * 8, y + (i // 3) * 8, no_value))
        y += -(-len(section) // 3) * 8
    return {
        "uid": DASHBOARD_UID,
        "title": f"DeepSeek-R1 on Ascend ({stack})",
        "tags": ["deepseek-r1-ascend", "vllm"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "panels": panels,
    }
