"""Observability from the plan: its settings, scrape targets, alert rules (under promtool), the
dashboard's structure, and that no observability setting reaches the vllm containers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import textwrap

import pytest
import yaml
from mocked import PROJECT_DIR, run_program, stack_settings
from policy_harness import graph_of, mutate, run
from pydantic import BaseModel

from core import render as dry_run
from core.config import ConfigError, load_config
from core.dashboard import DATASOURCE_UID, NO_EXPORTER, dashboard
from core.deployment import plan_deployment
from core.models import ClusterConfig
from core.observability import DASHBOARD_FILE, alert_rules, plan_observability
from core.observability_settings import Alerts
from core.plan import plan_cluster
from supervision.protocol import (
    GROUP_RESTARTS,
    GROUP_SERVED,
    HEAD_HEALTHY,
    PEER_UP,
    RESTART_CAPPED,
    VLLM_UP,
    State,
    metrics_text,
)

CONTAINER = "docker:index/container:Container"
EXPORTER = "site.example/ascend/npu-exporter:v6.0.0"


def settings(stack: str = "a2", **observability) -> dict:
    raw = stack_settings(stack)
    raw["observability"] = {"enabled": True, **observability}
    raw["grafanaAdminPassword"] = "s3cret-admin"
    return raw


def planned(raw: dict, stack: str = "a2"):
    cfg = load_config(raw, frozenset({"grafanaAdminPassword"}))
    plan = plan_cluster(cfg, stack)
    return plan, plan_observability(cfg, (plan,))


def problems(raw: dict, secret_keys=frozenset({"grafanaAdminPassword"})) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(raw, secret_keys)
    return error.value.problems


def uploads(container) -> dict[str, str]:
    return {u.path: u.content for u in container.uploads}


def test_observability_is_off_unless_enabled():
    cfg = load_config(stack_settings("a2"))
    assert plan_observability(cfg, (plan_cluster(cfg, "a2"),)) is None


def test_every_observability_mistake_is_named_at_once():
    raw = settings(
        node="a2-9",
        prometheus={"image": "prom/prometheus", "port": 13389},
        grafana={"port": 8000},
        npuExporter={"image": EXPORTER, "port": 9401},
        alerts={"kvCacheUsage": 1.5, "ttftP99": 3},
    )
    del raw["grafanaAdminPassword"]
    assert problems(raw) == [
        "observability.prometheus.image: 'prom/prometheus' has no tag; pin a version tag such as :v0.18.0 "
        "or a @sha256: digest",
        "observability.alerts.kvCacheUsage: got 1.5; input should be less than or equal to 1",
        "observability.alerts.ttftP99: unknown key; did you mean 'ttftP99Seconds'? known keys here: "
        "notServingMinutes, restartsPerHour, ttftP99Seconds, interTokenP99Seconds, latencyMinutes, kvCacheUsage, "
        "queueGrowingMinutes, npuTemperatureCelsius, npuHbmUsage, "
        "groupOutOfRouterMinutes",
        "observability.node: 'a2-9' is not a node; use one of a2-0, a2-1",
        "grafanaAdminPassword: required when observability.grafana.enabled is true; set it with "
        "`pulumi config set --secret grafanaAdminPassword <password>`, or disable Grafana",
        "observability.prometheus.port: 13389 is also serve.dataParallelRpcPort; every service on a node needs "
        "its own port",
        "observability.grafana.port: 8000 is also serve.port; every service on a node needs its own port",
        "observability.npuExporter.port: 9401 is also supervision.metricsPort; every service on a node "
        "needs its own port",
    ]


def test_prometheus_port_may_not_take_the_rpc_port():
    assert problems(settings(prometheus={"port": 13389})) == [
        "observability.prometheus.port: 13389 is also serve.dataParallelRpcPort; every service on a node needs "
        "its own port"
    ]


def test_grafana_password_must_be_a_secret():
    assert problems(settings(), secret_keys=frozenset()) == [
        "grafanaAdminPassword: stored in plain text; set it with "
        "`pulumi config set --secret grafanaAdminPassword <value>`"
    ]


def test_without_grafana_no_password_is_needed():
    raw = settings(grafana={"enabled": False})
    del raw["grafanaAdminPassword"]
    plan, obs = planned(raw)
    assert [c.role for c in obs.containers] == ["prometheus"] and obs.grafana_url is None


def test_targets_and_labels_come_from_the_plan():
    plan, obs = planned(settings(npuExporter={"image": EXPORTER}))
    config = yaml.safe_load(uploads(obs.prometheus)["/etc/prometheus/prometheus.yml"])
    scraped = {
        job["job_name"]: [(c["targets"], c["labels"]) for c in job["static_configs"]]
        for job in config["scrape_configs"]
    }
    head = {"stack": "a2", "node": "a2-0", "role": "head", "ranks": "0-1"}
    headless = {"stack": "a2", "node": "a2-1", "role": "headless", "ranks": "2-3"}
    assert scraped == {
        # Headless nodes run no API server: only the head has vllm's /metrics.
        "vllm": [(["192.0.2.11:8000"], head)],
        "supervisor": [(["192.0.2.11:9401"], head), (["192.0.2.12:9401"], headless)],
        "npu-exporter": [(["192.0.2.11:8082"], head), (["192.0.2.12:8082"], headless)],
    }
    assert config["global"]["scrape_interval"] == "5s"


def test_prometheus_and_grafana_run_on_the_chosen_node_from_the_mirror():
    plan, obs = planned(settings(node="a2-1", prometheus={"port": 19090}))
    assert obs.prometheus_url == "http://192.0.2.12:19090"
    assert obs.grafana_url == "http://192.0.2.12:3000"
    assert {c.role: (c.node, c.image) for c in obs.containers} == {
        "prometheus": ("a2-1", "m.daocloud.io/docker.io/prom/prometheus:v2.53.4"),
        "grafana": ("a2-1", "m.daocloud.io/docker.io/grafana/grafana:11.6.0"),
    }
    # On that node's own address, not on every interface.
    assert "--web.listen-address=192.0.2.12:19090" in obs.prometheus.argv
    datasource = yaml.safe_load(uploads(obs.containers[1])["/etc/grafana/provisioning/datasources/prometheus.yaml"])
    assert datasource["datasources"][0]["url"] == "http://192.0.2.12:19090"


def test_nothing_runs_privileged_and_the_npu_exporter_gets_the_npus_and_the_driver_read_only():
    plan, obs = planned(settings(npuExporter={"image": EXPORTER}))
    assert {(c.role, c.node) for c in obs.containers} == {
        ("prometheus", "a2-0"),
        ("grafana", "a2-0"),
        ("npu-exporter", "a2-0"),
        ("npu-exporter", "a2-1"),
    }
    raw = settings(npuExporter={"image": EXPORTER}) | {"grafanaAdminPassword": "s3cret-admin"}
    deployed = run_program(raw, stack="a2", secret_keys=("grafanaAdminPassword",))
    assert not [c.name for c in deployed.of_type("docker:index/container:Container") if c.inputs.get("privileged")]
    exporter = obs.containers[-1]
    assert exporter.image == EXPORTER  # a site registry is used as named
    assert [d.container_path for d in exporter.devices] == [f"/dev/davinci{i}" for i in range(8)] + [
        "/dev/davinci_manager",
        "/dev/devmm_svm",
        "/dev/hisi_hdc",
    ]
    assert all(c.devices == () for c in obs.containers if c.role != "npu-exporter")
    assert all(m.read_only for m in exporter.mounts)
    assert "/usr/local/Ascend/driver/lib64" in {m.container_path for m in exporter.mounts}


# --- the dashboard ------------------------------------------------------------------------------


def board(npu_exporter: bool) -> tuple[dict, dict]:
    _, obs = planned(settings(**({"npuExporter": {"image": EXPORTER}} if npu_exporter else {})))
    files = uploads(next(c for c in obs.containers if c.role == "grafana"))
    datasource = yaml.safe_load(files["/etc/grafana/provisioning/datasources/prometheus.yaml"])["datasources"][0]
    return json.loads(files[DASHBOARD_FILE]), datasource


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_panels_use_the_provisioned_datasource_and_each_has_a_query_and_a_unit():
    dashboard, datasource = board(npu_exporter=True)
    assert datasource["uid"] == DATASOURCE_UID and datasource["type"] == "prometheus"
    assert len(panels(dashboard)) == 16
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"] and all(
            t["expr"] and t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"]
        )
        assert "noValue" not in panel["fieldConfig"]["defaults"]
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == [
        "Serving",
        "Cluster",
        "NPUs per node and chip",
    ]


def test_without_an_exporter_the_npu_panels_say_so():
    dashboard, _ = board(npu_exporter=False)
    said = {p["title"] for p in panels(dashboard) if p["fieldConfig"]["defaults"].get("noValue") == NO_EXPORTER}
    assert said == {"NPU utilization", "NPU HBM used", "NPU temperature", "NPU power", "NPU health"}


# --- promtool -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    if not shutil.which("promtool") and os.geteuid() == 0:
        subprocess.run(
            ["bash", str(PROJECT_DIR / "scripts" / "docker-engine.sh")],
            env={**os.environ, "TOOLS_ONLY": "1"},
            capture_output=True,
            timeout=600,
        )
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool must run in CI; scripts/docker-engine.sh installs it (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def prometheus_files(tmp_path, **observability):
    _, obs = planned(settings(**observability))
    for path, content in uploads(obs.prometheus).items():
        (tmp_path / path.rsplit("/", 1)[1]).write_text(content)
    return tmp_path / "prometheus.yml", tmp_path / "rules.yml"


@pytest.mark.parametrize("exporter", [False, True], ids=["plain", "npu-exporter"])
def test_generated_config_and_rules_pass_promtool_check(promtool, tmp_path, exporter):
    config, _ = prometheus_files(tmp_path, **({"npuExporter": {"image": EXPORTER}} if exporter else {}))
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {13 if exporter else 10} rules found" in result.stdout


def rule_test(promtool, tmp_path, tests: str, **observability) -> subprocess.CompletedProcess:
    _, rules = prometheus_files(tmp_path, **observability)
    spec = tmp_path / "tests.yml"
    spec.write_text(f"rule_files: [{rules.name}]\nevaluation_interval: 15s\ntests:\n" + textwrap.indent(tests, "  "))
    return subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)


HEAD = 'stack="a2",node="a2-0",role="head",ranks="0-1"'
HEAD_LABELS = "{stack: a2, node: a2-0, role: head, ranks: 0-1}"


HEADLESS = 'stack="a2",node="a2-1",role="headless",ranks="2-3"'
NOT_SERVING = {
    "exp_labels": {"severity": "critical", "stack": "a2"},
    "exp_annotations": {
        "summary": "a2: the API is not serving",
        "description": "The group served, and now the head's API server does not answer, or answers /health "
        "with an error: no request is served.",
    },
}


def not_serving_test(series: dict[str, str], silent: list[str], firing: list[str]) -> str:
    """A promtool test of VllmApiNotServing over one-minute samples: silent, then firing, at these times."""
    evals = [{"eval_time": t, "alertname": "VllmApiNotServing", "exp_alerts": []} for t in silent]
    evals += [{"eval_time": t, "alertname": "VllmApiNotServing", "exp_alerts": [NOT_SERVING]} for t in firing]
    inputs = [{"series": name, "values": values} for name, values in series.items()]
    return yaml.safe_dump([{"interval": "1m", "input_series": inputs, "alert_rule_test": evals}], width=200)


def supervisors(head_healthy: str, served: str) -> dict[str, str]:
    """Both nodes' supervisor series: each node's view of the head, and the group having served."""
    return {
        f'deepseek_supervisor_{name}{{job="supervisor",{labels}}}': values
        for labels in (HEAD, HEADLESS)
        for name, values in (("head_healthy", head_healthy), ("group_served", served))
    }


def test_not_serving_fires_once_per_stack_after_its_window_once_the_group_had_served(promtool, tmp_path):
    # Served for two minutes, then the head stopped answering; its supervisors have not healed it
    # (yet): one alert for the stack, not one per node, after notServingMinutes and not before.
    series = {f'up{{job="vllm",{HEAD}}}': "1 1 0 0 0 0 0 0", **supervisors("1 1 0 0 0 0 0 0", "1 1 1 1 1 1 1 1")}
    result = rule_test(
        promtool, tmp_path, not_serving_test(series, ["1m", "3m"], ["5m", "7m"]), alerts={"notServingMinutes": 3}
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_not_serving_stays_silent_during_the_initial_load_and_a_heal(promtool, tmp_path):
    # The weight load: no API for 20 minutes, the group has not served yet.
    load = {f'up{{job="vllm",{HEAD}}}': "0x20 1", **supervisors("0x20 1", "0x20 1")}
    result = rule_test(
        promtool, tmp_path, not_serving_test(load, ["4m", "10m", "20m", "21m"], []), alerts={"notServingMinutes": 3}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A heal: the group served, the supervisors restarted it (served drops to 0), it reloads.
    heal = {f'up{{job="vllm",{HEAD}}}': "1 1 0x15 1", **supervisors("1 1 0x15 1", "1 1 1 0x14 1")}
    result = rule_test(
        promtool, tmp_path, not_serving_test(heal, ["3m", "6m", "12m", "17m"], []), alerts={"notServingMinutes": 3}
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_not_serving_without_supervisors_follows_the_scrape(promtool, tmp_path):
    series = {f'up{{job="vllm",{HEAD}}}': "1 1 0 0 0 0 0 0"}
    result = rule_test(promtool, tmp_path, not_serving_test(series, ["3m"], ["5m"]), alerts={"notServingMinutes": 3})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_and_the_dashboard_use_the_series_the_supervisor_exports():
    text = metrics_text(State(), True, True, peers_up={"a2-1": True})
    exported = set(re.findall(r"^(deepseek_supervisor_\w+)[ {]", text, re.M))
    _, obs = planned(settings())
    rules = uploads(obs.prometheus)["/etc/prometheus/rules.yml"]
    dashboard, _ = board(npu_exporter=False)
    used = set(re.findall(r"deepseek_supervisor_\w+", rules + json.dumps(dashboard)))
    assert {GROUP_SERVED, HEAD_HEALTHY, VLLM_UP, RESTART_CAPPED, GROUP_RESTARTS, PEER_UP} <= used
    assert used <= exported


def test_repeated_group_restarts_fire(promtool, tmp_path):
    result = rule_test(
        promtool,
        tmp_path,
        f"""
- interval: 5m
  input_series:
    - series: 'deepseek_supervisor_group_restarts_total{{job="supervisor",{HEAD}}}'
      values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1'
    - series: 'deepseek_supervisor_group_restarts_total{{job="supervisor",stack="a2",node="a2-1",role="headless",ranks="2-3"}}'
      values: '0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
  alert_rule_test:
    - eval_time: 30m
      alertname: GroupRestarting
      exp_alerts: []
""",
        alerts={"restartsPerHour": 2},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = rule_test(
        promtool,
        tmp_path,
        f"""
- interval: 5m
  input_series:
    - series: 'deepseek_supervisor_group_restarts_total{{job="supervisor",{HEAD}}}'
      values: '0 0 0 1 2 3 3 3 3 3 3 3 3 3 3 3'
  alert_rule_test:
    - eval_time: 30m
      alertname: GroupRestarting
      exp_alerts:
        - exp_labels: {{severity: warning, job: supervisor, stack: a2, node: a2-0, role: head, ranks: 0-1}}
          exp_annotations:
            summary: 'a2: the group restarted 3 times in the last hour'
            description: 'The supervisor keeps restarting the group: look for the first failing node in its logs.'
""",
        alerts={"restartsPerHour": 2},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_latency_alert_fires_on_a_slow_first_token_series(promtool, tmp_path):
    # Ten requests a minute, every one with its first token after 15-20 s: p99 is above 10 s.
    buckets = "".join(
        f"""    - series: 'vllm:time_to_first_token_seconds_bucket{{job="vllm",{HEAD},le="{le}"}}'
      values: '{values}'
"""
        for le, values in (("10.0", "0+0x20"), ("20.0", "0+10x20"), ("+Inf", "0+10x20"))
    )
    result = rule_test(
        promtool,
        tmp_path,
        f"""
- interval: 1m
  input_series:
{buckets}  alert_rule_test:
    - eval_time: 4m
      alertname: TtftP99High
      exp_alerts: []
    - eval_time: 12m
      alertname: TtftP99High
      exp_alerts:
        - exp_labels: {{severity: warning, stack: a2}}
          exp_annotations:
            summary: 'a2: time to first token p99 is 19.9s'
            description: 'Time to first token at p99 has stayed above 10 s: prefill is overloaded.'
""",
        alerts={"ttftP99Seconds": 10, "latencyMinutes": 5},
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- nothing reaches the vllm containers --------------------------------------------------------


def vllm_inputs(deployment) -> dict:
    return {
        r.name: (r.inputs, r.replacement_trigger)
        for r in deployment.resources
        if r.type == CONTAINER and r.name.endswith("-vllm")
    }


@pytest.mark.parametrize("stack", ["a2", "a3"])
def test_no_observability_setting_changes_the_vllm_containers(stack):
    baseline = run_program(stack_settings(stack), stack=stack)
    assert baseline.error is None and "prometheusUrl" not in baseline.outputs
    last = stack_settings(stack)["nodes"][-1]["name"]
    variants = [
        {},
        {"alerts": {"ttftP99Seconds": 3, "kvCacheUsage": 0.5}, "prometheus": {"scrapeIntervalSeconds": 15}},
        {"node": last, "npuExporter": {"image": EXPORTER}, "grafana": {"port": 3300}},
    ]
    for variant in variants:
        deployed = run_program(settings(stack, **variant), stack=stack, secret_keys=("grafanaAdminPassword",))
        assert deployed.error is None
        assert vllm_inputs(deployed) == vllm_inputs(baseline), variant
        host = variant.get("node", f"{stack}-0")
        observed = {r.name for r in deployed.resources if r.type == CONTAINER} - set(vllm_inputs(baseline))
        assert observed >= {f"{host}-prometheus", f"{host}-grafana"}
    # The rendered per-node scripts (the tutorial's containers) are the same with observability on.
    with_obs, without = planned(settings(stack), stack)[0], plan_cluster(load_config(stack_settings(stack)), stack)
    assert [dry_run.node_script(with_obs, n) for n in with_obs.nodes] == [
        dry_run.node_script(without, n) for n in without.nodes
    ]


def test_outputs_give_the_urls_and_the_password_stays_secret():
    deployed = run_program(settings(), stack="a2", secret_keys=("grafanaAdminPassword",))
    assert deployed.outputs["prometheusUrl"] == "http://192.0.2.11:9090"
    assert deployed.outputs["grafanaUrl"] == "http://192.0.2.11:3000"
    grafana = deployed.named("a2-0-grafana")
    assert "envs" in grafana.secret_inputs
    assert "GF_SECURITY_ADMIN_PASSWORD=s3cret-admin" in grafana.inputs["envs"]
    assert "s3cret-admin" not in json.dumps(deployed.outputs)
    prometheus = deployed.named("a2-0-prometheus")
    assert not prometheus.inputs.get("privileged") and prometheus.inputs["networkMode"] == "host"
    assert prometheus.inputs["volumes"] == [
        {"hostPath": "/var/lib/deepseek-r1-ascend/prometheus", "containerPath": "/prometheus", "readOnly": False}
    ]
    assert [u["file"] for u in prometheus.inputs["uploads"]] == [
        "/etc/prometheus/prometheus.yml",
        "/etc/prometheus/rules.yml",
    ]
    # The data directory is made Prometheus' before the container starts (see test_owned_dir.py).
    prepare = deployed.named("observability-prometheus-data")
    step, spec = shlex.split(prepare.inputs["create"])[3:5]
    assert step == "owned-dir"
    assert {k: json.loads(spec)[k] for k in ("node", "path", "owner")} == {
        "node": "a2-0",
        "path": "/var/lib/deepseek-r1-ascend/prometheus",
        "owner": 65534,
    }
    assert prepare.urn in prometheus.dependencies


# --- the policy pack ----------------------------------------------------------------------------


def test_the_policy_pack_allows_privileged_mode_only_to_the_image_it_names():
    settings_ = settings(npuExporter={"image": EXPORTER})
    settings_["apiKey"] = "policy-key"
    for node in settings_["nodes"]:
        node["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPolicyTestHostKey"
    deployed = run_program(settings_, stack="a2", secret_keys=("grafanaAdminPassword", "apiKey"))
    graph = graph_of(deployed)
    refused = "the container runs privileged, which hands it every host device and capability"
    # The exporter gets the NPU devices, not privileged mode: the planned graph passes as it is.
    assert run(graph, only="vllm-container-host-isolation") == []

    def privileged(inputs):
        inputs["privileged"] = True

    # A site whose exporter build needs privileged mode names that pinned image in the pack config.
    as_privileged = mutate(graph, "a2-0-npu-exporter", privileged)
    found = run(as_privileged, only="vllm-container-host-isolation")
    assert [v.message.split("; ")[0] for v in found] == [f"node a2-0 (a2-0-npu-exporter): {refused}"]
    exporter_id = deployed.named("a2-0-npu-exporter").inputs["image"]
    allowed = {"vllm-container-host-isolation": {"privilegedImages": {exporter_id: "reads every NPU"}}}
    assert run(as_privileged, config=allowed) == []

    for name, label in (("a2-0-prometheus", "node a2-0 (a2-0-prometheus)"), ("a2-1-vllm", "node a2-1")):
        found = run(mutate(graph, name, privileged), only="vllm-container-host-isolation", config=allowed)
        assert [v.message.split("; ")[0] for v in found] == [f"{label}: {refused}"], name

    def socket(inputs):
        inputs["volumes"].append({"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"})

    # Privileged mode is the whole exception: the exporter's mounts are checked like any other.
    found = run(mutate(graph, "a2-1-npu-exporter", socket), only="vllm-container-host-isolation", config=allowed)
    assert [v.message.split(",")[0] for v in found] == [
        "node a2-1 (a2-1-npu-exporter): /var/run/docker.sock is mounted"
    ]


def test_the_registry_is_checked_like_the_vllm_image_registry():
    raw = settings(registry="https://mirror.example")
    assert problems(raw) == [
        "observability.registry: 'https://mirror.example' has a URL scheme, which Docker references do not take; "
        "use 'mirror.example'"
    ]


def test_a_peer_the_supervisor_cannot_reach_alerts_after_the_not_serving_window(promtool, tmp_path):
    series = {f'{PEER_UP}{{job="supervisor",{HEADLESS},peer="a2-0"}}': "1 0 0 0 0 0"}
    firing = {
        "exp_labels": {
            "severity": "critical",
            "job": "supervisor",
            "stack": "a2",
            "node": "a2-1",
            "role": "headless",
            "ranks": "2-3",
            "peer": "a2-0",
        },
        "exp_annotations": {
            "summary": "a2: the supervisor on a2-1 cannot reach a2-0's",
            "description": "A node is down, or supervision.metricsPort is blocked between the nodes: a group "
            "restart waits for every peer, so the group cannot heal until they see each other again.",
        },
    }
    evals = [
        {"eval_time": "2m", "alertname": "SupervisorPeerUnreachable", "exp_alerts": []},
        {"eval_time": "4m", "alertname": "SupervisorPeerUnreachable", "exp_alerts": [firing]},
    ]
    inputs = [{"series": name, "values": values} for name, values in series.items()]
    tests = yaml.safe_dump([{"interval": "1m", "input_series": inputs, "alert_rule_test": evals}], width=200)
    result = rule_test(promtool, tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr


# --- paths that cannot hurt the host ------------------------------------------------------------

SUGGESTED = "use a directory of this deployment's own, such as /var/lib/deepseek-r1-ascend/prometheus"
HANDED = "pulumi up hands this directory to Prometheus' user (uid 65534), who must own nothing of the host's"
SHALLOW = (
    "is a host system directory (/, a top-level directory, or one directly under /home, /media, /mnt, /opt, /srv "
    "or /var)"
)


@pytest.mark.parametrize(
    "path, where",
    [
        ("/", SHALLOW),
        ("/etc", "is /etc, a host system tree"),
        ("/etc/prometheus", "is inside /etc, a host system tree"),
        ("/usr/local/bin", "is inside /usr, a host system tree"),
        ("/root/.ssh", "is inside /root, a host system tree"),
        ("/boot/grub", "is inside /boot, a host system tree"),
        ("/lib64", "is /lib64, a host system tree"),
        ("/proc/1", "is inside /proc, a host system tree"),
        ("/sys/fs/cgroup", "is inside /sys, a host system tree"),
        ("/dev/shm/prometheus", "is inside /dev, a host system tree"),
        ("/run/prometheus", "is inside /run, a host system tree"),
        ("/tmp/prometheus", "is inside /tmp, a host system tree"),
        ("/var/lib/docker/volumes/prometheus", "is inside /var/lib/docker, a host system tree"),
        ("/var/spool/cron", "is inside /var/spool, a host system tree"),
        ("/var", SHALLOW),
        ("/var/lib", SHALLOW),
        ("/var/log", SHALLOW),
        ("/home", SHALLOW),
        ("/home/alice", SHALLOW),
        ("/opt/prometheus", SHALLOW),
        ("/srv/data", SHALLOW),
        ("/data", SHALLOW),
    ],
)
def test_a_system_directory_is_refused_as_prometheus_data(path, where):
    assert problems(settings(prometheus={"dataDir": path})) == [
        f"observability.prometheus.dataDir: '{path}' {where}: {HANDED}; {SUGGESTED}"
    ]


@pytest.mark.parametrize(
    "path, plain",
    [
        ("/var/lib/prometheus/", "/var/lib/prometheus"),
        ("/var//lib/prometheus", "/var/lib/prometheus"),
        ("//etc", "/etc"),
    ],
)
def test_a_data_directory_is_written_plainly(path, plain):
    assert problems(settings(prometheus={"dataDir": path})) == [
        f"observability.prometheus.dataDir: '{path}' has a repeated or trailing '/'; write it as {plain}"
    ]


@pytest.mark.parametrize("path", ["/var/lib/../../etc", "/var/lib/./x/..", "/var/lib/x\nprometheus", "var/lib/x"])
def test_a_data_directory_that_is_no_plain_absolute_path_is_refused(path):
    # Else the denylist could be walked around: /var/lib/../../etc is /etc. The wording is that of
    # every path key's (core/section.py).
    (problem,) = problems(settings(prometheus={"dataDir": path}))
    assert problem.startswith(f"observability.prometheus.dataDir: {path!r} ")


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/deepseek-r1-ascend/prometheus",
        "/var/lib/prometheus",
        "/data/prometheus",
        "/srv/monitoring/prometheus",
        "/home/ops/prometheus",
        "/mnt/disk1/prometheus",
    ],
)
def test_a_directory_of_the_deployments_own_is_accepted(path):
    _, obs = planned(settings(prometheus={"dataDir": path}))
    assert obs.prometheus_data_dir == path
    assert [m.host_path for m in obs.prometheus.mounts] == [path]


def test_the_shipped_stacks_data_directories_pass():
    for stack in ("a2", "a3", "local"):
        raw = stack_settings(stack)
        raw.setdefault("observability", {})["enabled"] = True
        raw["observability"].setdefault("grafana", {})["enabled"] = False
        cfg = load_config(raw)
        assert plan_observability(cfg, (plan_cluster(cfg, stack),)).prometheus_data_dir.startswith("/var/lib/")


# --- where each server listens -------------------------------------------------------------------


def listens(obs) -> dict[tuple[str, str], str]:
    """(role, node) -> the address and port each observability container listens on."""
    found = {}
    for c in obs.containers:
        if c.role == "prometheus":
            (flag,) = [a for a in c.argv if a.startswith("--web.listen-address=")]
            found[c.role, c.node] = flag.split("=", 1)[1]
        elif c.role == "grafana":
            env = dict(c.env)
            found[c.role, c.node] = f"{env['GF_SERVER_HTTP_ADDR']}:{env['GF_SERVER_HTTP_PORT']}"
        else:
            args = dict(a.lstrip("-").split("=", 1) for a in c.argv[1:])
            found[c.role, c.node] = f"{args['ip']}:{args['port']}"
    return found


def test_every_server_listens_on_its_nodes_address_not_on_every_interface():
    _, obs = planned(settings(npuExporter={"image": EXPORTER}))
    assert listens(obs) == {
        ("prometheus", "a2-0"): "192.0.2.11:9090",
        ("grafana", "a2-0"): "192.0.2.11:3000",
        ("npu-exporter", "a2-0"): "192.0.2.11:8082",
        ("npu-exporter", "a2-1"): "192.0.2.12:8082",
    }
    for c in obs.containers:
        assert not any("0.0.0.0" in a or "=:" in a for a in c.argv + tuple(v for _, v in c.env)), c.role
    # Prometheus scrapes each exporter where it listens.
    exporters = {t.address for t in obs.targets if t.job == "npu-exporter"}
    assert exporters == {v for (role, _), v in listens(obs).items() if role == "npu-exporter"}


def test_prometheus_and_grafana_listen_on_the_chosen_address_and_the_urls_follow():
    _, obs = planned(settings(listenAddress="127.0.0.1", npuExporter={"image": EXPORTER}))
    assert listens(obs)["prometheus", "a2-0"] == "127.0.0.1:9090"
    assert listens(obs)["grafana", "a2-0"] == "127.0.0.1:3000"
    # The exporters stay on their nodes' addresses: Prometheus scrapes them from another node.
    assert listens(obs)["npu-exporter", "a2-1"] == "192.0.2.12:8082"
    assert (obs.prometheus_url, obs.grafana_url) == ("http://127.0.0.1:9090", "http://127.0.0.1:3000")
    grafana = next(c for c in obs.containers if c.role == "grafana")
    datasource = yaml.safe_load(uploads(grafana)["/etc/grafana/provisioning/datasources/prometheus.yaml"])
    assert datasource["datasources"][0]["url"] == "http://127.0.0.1:9090"


def test_an_ipv6_listen_address_is_bracketed_where_a_port_follows():
    _, obs = planned(settings(listenAddress="2001:DB8::99"))
    assert listens(obs)["prometheus", "a2-0"] == "[2001:db8::99]:9090"
    # Grafana joins its address and port itself.
    assert listens(obs)["grafana", "a2-0"] == "2001:db8::99:3000"
    assert obs.prometheus_url == "http://[2001:db8::99]:9090"


@pytest.mark.parametrize(
    "address, message",
    [
        (
            "0.0.0.0",
            "0.0.0.0 listens on every interface of the node; use the observability node's own address (the "
            "default), a management address of that node, or 127.0.0.1",
        ),
        (
            "::",
            ":: listens on every interface of the node; use the observability node's own address (the "
            "default), a management address of that node, or 127.0.0.1",
        ),
        ("fe80::1%eth0", "'fe80::1%eth0' has an IPv6 scope ID; use an address without '%'"),
        (
            "prometheus.example",
            "'prometheus.example' is not an IP address; use the observability node's own address (the default), "
            "a management address of that node, or 127.0.0.1",
        ),
    ],
)
def test_a_listen_address_is_one_address(address, message):
    assert problems(settings(listenAddress=address)) == [f"observability.listenAddress: {message}"]


def test_vllm_is_scraped_where_it_listens():
    raw = settings("a3")
    raw["serve"] = {"host": "127.0.0.1"}
    _, obs = planned(raw, "a3")
    assert [t.address for t in obs.targets if t.job == "vllm"] == ["127.0.0.1:8000"]
    _, obs = planned(settings("a3"), "a3")  # every interface: the head's own address
    assert [t.address for t in obs.targets if t.job == "vllm"] == [f"{stack_settings('a3')['nodes'][0]['ip']}:8000"]


def test_the_local_stack_listens_on_its_loopback_addresses():
    cfg = load_config(stack_settings("local"))
    obs = plan_observability(cfg, (plan_cluster(cfg, "local"),))
    assert listens(obs) == {("prometheus", "sim-0"): "127.0.0.1:9090"}
    assert obs.prometheus_url == "http://127.0.0.1:9090"
    assert {t.address for t in obs.targets} == {"127.0.0.1:8000", "127.0.0.1:9401", "127.0.0.2:9401"}


def test_the_deployed_and_rendered_containers_listen_on_the_chosen_addresses():
    raw = settings(npuExporter={"image": EXPORTER})
    deployed = run_program(raw, stack="a2", secret_keys=("grafanaAdminPassword",))
    assert deployed.error is None
    assert "--web.listen-address=192.0.2.11:9090" in deployed.named("a2-0-prometheus").inputs["command"]
    assert "GF_SERVER_HTTP_ADDR=192.0.2.11" in deployed.named("a2-0-grafana").inputs["envs"]
    assert "-ip=192.0.2.12" in deployed.named("a2-1-npu-exporter").inputs["command"]
    config = yaml.safe_load(
        next(
            u["content"]
            for u in deployed.named("a2-0-prometheus").inputs["uploads"]
            if u["file"].endswith("prometheus.yml")
        )
    )
    scraped = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert "192.0.2.12:8082" in scraped and not any(t.startswith(("0.0.0.0", ":")) for t in scraped)
    rendered = dry_run.render(plan_deployment(load_config(raw, frozenset({"grafanaAdminPassword"})), "a2"))
    assert "--web.listen-address=192.0.2.11:9090" in rendered and "-ip=192.0.2.12" in rendered
    assert "GF_SERVER_HTTP_ADDR=192.0.2.11" in rendered


def _port_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every `port` and `...Port` key of the configuration, as a stack file spells it."""
    keys = set()
    for field in model.model_fields.values():
        key = prefix + field.alias
        inner = getattr(field.annotation, "__args__", (field.annotation,))
        section = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if section is not None:
            keys |= _port_keys(section, key + ".")
        elif field.alias == "port" or field.alias.endswith("Port"):
            keys.add(key)
    return keys


def test_the_security_page_names_every_port_the_stack_opens():
    keys = _port_keys(ClusterConfig)
    assert {"serve.port", "serve.dataParallelRpcPort", "supervision.metricsPort", "ssh.port"} <= keys
    assert {"observability.prometheus.port", "observability.grafana.port", "observability.npuExporter.port"} <= keys
    page = (PROJECT_DIR / "docs" / "security.md").read_text()
    assert {k for k in keys if f"`{k}`" not in page} == set()


# --- several groups behind the router -------------------------------------------------------------------


def rules_test(promtool, tmp_path, series: dict[str, str], evals: list[dict], **rules) -> None:
    """promtool's unit test of the alert rules planned with `rules` (router=, pd=) on `series`."""
    (tmp_path / "rules.yml").write_text(alert_rules(Alerts(), npu_metrics=False, **rules))
    inputs = [{"series": name, "values": values} for name, values in series.items()]
    tests = yaml.safe_dump([{"interval": "1m", "input_series": inputs, "alert_rule_test": evals}], width=200)
    spec = tmp_path / "tests.yml"
    spec.write_text("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n" + textwrap.indent(tests, "  "))
    result = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


BLUE, GREEN = 'stack="g",worker="http://10.0.0.1:8000"', 'stack="g",worker="http://10.0.0.3:8000"'


def out_of_router(worker: str) -> dict:
    return {
        "exp_labels": {"severity": "warning", "stack": "g", "worker": worker},
        "exp_annotations": {
            "summary": f"g: the router has sent {worker} nothing for a rollout's time",
            "description": "A group is out of the router for longer than a rollout takes: its containers failed, "
            "or a `pulumi up` stopped between its drain and its return. The other groups carry its load.",
        },
    }


def test_a_group_out_of_the_router_longer_than_a_rollout_alerts(promtool, tmp_path):
    series = {
        # Blue fails the router's health checks from the first minute on, and gets nothing; green serves.
        f"vllm_router_worker_health{{{BLUE}}}": "1 0x130",
        f"vllm_router_worker_health{{{GREEN}}}": "1x130",
        f"vllm_router_processed_requests_total{{{BLUE}}}": "0 10x130",
        f"vllm_router_processed_requests_total{{{GREEN}}}": "0+60x130",
    }
    evals = [
        {"eval_time": "80m", "alertname": "GroupOutOfRouter", "exp_alerts": []},
        {"eval_time": "100m", "alertname": "GroupOutOfRouter", "exp_alerts": [out_of_router("http://10.0.0.1:8000")]},
        {"eval_time": "100m", "alertname": "NoGroupServing", "exp_alerts": []},
    ]
    rules_test(promtool, tmp_path, series, evals, router=True)


def test_a_group_removed_from_the_router_alerts_though_its_health_stays_1(promtool, tmp_path):
    series = {
        # Removed at minute 10: its health series keeps its last value, but it gets no request.
        f"vllm_router_worker_health{{{BLUE}}}": "1x130",
        f"vllm_router_worker_health{{{GREEN}}}": "1x130",
        f"vllm_router_processed_requests_total{{{BLUE}}}": "0+60x10 600x120",
        f"vllm_router_processed_requests_total{{{GREEN}}}": "0+60x130",
    }
    evals = [
        {"eval_time": "100m", "alertname": "GroupOutOfRouter", "exp_alerts": []},
        {"eval_time": "125m", "alertname": "GroupOutOfRouter", "exp_alerts": [out_of_router("http://10.0.0.1:8000")]},
    ]
    rules_test(promtool, tmp_path, series, evals, router=True)


def test_no_group_serving_alerts_at_once(promtool, tmp_path):
    series = {f"vllm_router_worker_health{{{BLUE}}}": "1 0x10", f"vllm_router_worker_health{{{GREEN}}}": "1 0x10"}
    firing = {
        "exp_labels": {"severity": "critical", "stack": "g"},
        "exp_annotations": {
            "summary": "g: no group serves behind the router",
            "description": "Every group fails the router's health checks: no request is served.",
        },
    }
    evals = [
        {"eval_time": "2m", "alertname": "NoGroupServing", "exp_alerts": []},
        {"eval_time": "5m", "alertname": "NoGroupServing", "exp_alerts": [firing]},
    ]
    rules_test(promtool, tmp_path, series, evals, router=True)


def test_the_dashboard_shows_each_group_and_the_routers_view_only_with_a_router():
    rows = [p["title"] for p in dashboard("g", npu_exporter=False, router=True)["panels"] if p["type"] == "row"]
    assert rows == ["Serving", "Groups behind the router", "Cluster", "NPUs per node and chip"]
    assert "Groups behind the router" not in {p["title"] for p in dashboard("a2", npu_exporter=False)["panels"]}


# --- prefill-decode disaggregation ------------------------------------------------------------------------


# The supervisor's series, by the name the rule and the panel must use.
KV_TRANSFER_FAILURES = "deepseek_supervisor_kv_transfer_failures_total"
DECODER = {"job": "supervisor", "stack": "p", "node": "p-2", "role": "head", "ranks": "0-15", "pd_role": "decode"}
PREFILLER = {**DECODER, "node": "p-0", "ranks": "0-1", "pd_role": "prefill"}


def _series(labels: dict[str, str]) -> str:
    return KV_TRANSFER_FAILURES + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_a_single_failed_kv_transfer_alerts_at_once_for_an_hour(promtool, tmp_path):
    # One failure on the decoder at minute 10, none on the prefiller.
    series = {_series(DECODER): "0x9 1x100", _series(PREFILLER): "0x110"}
    firing = {
        "exp_labels": {"severity": "critical", **DECODER},
        "exp_annotations": {
            "summary": "p: KV transfers failed on p-2: answers are wrong",
            "description": "vllm logged a failed KV transfer (Mooncake) on this node within the last hour. "
            "vllm-ascend v0.18.0 does not fail such a request: it decodes without the prompt's KV and returns "
            "garbage as a success. Check /etc/hccn.conf, the KV ports and the NPU network between the prefill "
            "and decode nodes; vllm's line is in the node's container log.",
        },
    }
    evals = [
        {"eval_time": "9m", "alertname": "KvTransferFailed", "exp_alerts": []},
        {"eval_time": "10m", "alertname": "KvTransferFailed", "exp_alerts": [firing]},
        {"eval_time": "65m", "alertname": "KvTransferFailed", "exp_alerts": [firing]},
        {"eval_time": "75m", "alertname": "KvTransferFailed", "exp_alerts": []},
    ]
    rules_test(promtool, tmp_path, series, evals, pd=True)


def test_a_supervisor_restart_is_no_failed_kv_transfer(promtool, tmp_path):
    # Three failures counted, then the container restarts: the count starts again from 0.
    series = {_series(PREFILLER): "3x80 0x40"}
    evals = [{"eval_time": f"{m}m", "alertname": "KvTransferFailed", "exp_alerts": []} for m in (70, 85, 110)]
    rules_test(promtool, tmp_path, series, evals, pd=True)


def test_the_kv_transfer_alert_and_panels_only_with_prefill_decode():
    assert "KvTransferFailed" not in alert_rules(Alerts(), npu_metrics=True, router=True)
    assert "KvTransferFailed" in alert_rules(Alerts(), npu_metrics=False, pd=True)
    rows = [p["title"] for p in dashboard("p", npu_exporter=False, pd=True)["panels"] if p["type"] == "row"]
    assert rows == ["Serving", "Prefill and decode", "Cluster", "NPUs per node and chip"]
    for router in (False, True):
        assert "Prefill and decode" not in {p["title"] for p in dashboard("g", False, router)["panels"]}
    panels = {p["title"]: p for p in dashboard("p", npu_exporter=False, pd=True)["panels"]}
    queries = [t["expr"] for t in panels["Time to first token by role"]["targets"]]
    assert (
        'histogram_quantile(0.99, sum by (le, pd_role) (rate(vllm:time_to_first_token_seconds_bucket{job="vllm"}[1m])))'
        in queries
    )
    assert {t["legendFormat"] for t in panels["Inter-token latency by role"]["targets"]} == {
        "{{pd_role}} p50",
        "{{pd_role}} p99",
    }
    assert KV_TRANSFER_FAILURES in panels["KV transfers failed per node"]["targets"][0]["expr"]
