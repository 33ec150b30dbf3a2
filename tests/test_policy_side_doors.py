"""The isolation and credential policies have no side doors (security review M6, M7): each door is
opened on a shipped stack's mocked graph and reported with its exact message, and the near misses
beside it pass. Every container is checked, whatever it runs."""

from __future__ import annotations

import shlex

import pytest
from policy_harness import POLICY_DIR, Node, add_volume, both, graph, messages, mutate, named, policies, run, set_input
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from core.config import WEIGHTS_MOUNT

ISOLATION = "vllm-container-host-isolation"
PRIVILEGES = "vllm-container-privileges"
WRITABLE = "vllm-host-system-dirs-writable"
READ_ONLY = "vllm-host-system-dirs"
SECRETS = "vllm-no-secrets-on-command-line"
HF = "hf_" + "a" * 34
SK = "sk-live-0123456789abcdefghij"
PLAIN_TEXT = "where `docker inspect`, `ps` on the node and the Pulumi state show it in plain text"
PROMETHEUS_FIX = (
    "set observability.prometheus.dataDir to a directory of its own outside the host system directories "
    "(by default /var/lib/deepseek-r1-ascend/prometheus)"
)
NPU_DEVICES = "/dev/davinciN, /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc"


# --- changes that open a door ------------------------------------------------------------------


def _mounts(*mounts: dict):
    return set_input("mounts", list(mounts))


def _local_volume(device: str, target: str, o: str = "bind", **extra) -> dict:
    options = {"driverName": "local", "driverOptions": {"type": "none", "o": o, "device": device}}
    return {"type": "volume", "target": target, "volumeOptions": options, **extra}


def _device(host: str, container: str | None = None):
    def change(inputs):
        inputs["devices"].append({"hostPath": host, "containerPath": container or host, "permissions": "rwm"})

    return change


def _command(make):
    """Replace the container's command with make(old command)."""
    return lambda inputs: inputs.__setitem__("command", make(inputs["command"]))


def _entrypoint_only(extra: list[str]):
    def change(inputs):
        inputs["entrypoints"] = inputs.pop("command") + extra

    return change


def _api_server(command: list[str]) -> list[str]:
    """`vllm serve MODEL ...` as `python3 -m vllm.entrypoints.openai.api_server --model MODEL ...`."""
    return ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", *command[2:]]


def _weights_at(host):
    def change(inputs):
        next(v for v in inputs["volumes"] if v["containerPath"] == WEIGHTS_MOUNT)["hostPath"] = host

    return change


def _prometheus_data(host):
    return lambda inputs: inputs["volumes"][0].__setitem__("hostPath", host)


def _owned_dir(path):
    """The owned-dir step (mkdir + chown) of the local stack's Prometheus data directory, at `path`."""
    return lambda inputs: inputs.__setitem__(
        "create", inputs["create"].replace("/var/lib/deepseek-r1-sim/prometheus", path)
    )


def _privilege_message(who: str, cap: str, noun: str = "the container", needs: str = "beyond Docker's defaults"):
    return (
        f"{who}: capabilities.adds {cap} gives {noun} a host privilege {needs}; remove it, or state why in the "
        f'pack config: "vllm-container-privileges": {{"allowedCapabilities": {{"{cap}": "<reason>"}}}}'
    )


# (id, stack, resource, change, policy, expected message)
SIDE_DOORS = [
    # --- host paths through volumes
    (
        "local-volume-binds-host-root",
        "a2",
        "a2-0-vllm",
        _mounts(_local_volume("/", "/host")),
        ISOLATION,
        "node a2-0: the host root / is mounted at /host through a local-driver volume (o=bind), which exposes the "
        "whole host; mount only the paths the container needs",
    ),
    (
        "local-volume-binds-docker-socket",
        "a3",
        "a3-0-vllm",
        _mounts(_local_volume("/var/run", "/engine", o="rbind")),
        ISOLATION,
        "node a3-0: /var/run (holding /var/run/docker.sock) is mounted at /engine through a local-driver volume "
        "(o=bind), which gives the container root on the host through the container engine; remove that volume",
    ),
    (
        "local-volume-binds-etc",
        "a2",
        "a2-1-vllm",
        _mounts(_local_volume("/etc", "/host-etc")),
        WRITABLE,
        "node a2-1: host system directory /etc is mounted writable at /host-etc through a local-driver volume "
        "(o=bind), so the serving container can change the host itself; remove that volume, or give it "
        "readOnly: true if the container must read it",
    ),
    (
        "local-volume-binds-etc-read-only",
        "a2",
        "a2-1-vllm",
        _mounts(_local_volume("/etc", "/host-etc", o="bind,ro")),
        READ_ONLY,
        "node a2-1: host system directory /etc is mounted read-only at /host-etc through a local-driver volume "
        "(o=bind), which shows the serving container the host's files (configuration, keys, other services' "
        "state); remove that volume, or mount only the files it needs from outside the system directories",
    ),
    (
        "volumes-from-another-container",
        "a3",
        "a3-0-vllm",
        lambda inputs: inputs["volumes"].append({"fromContainer": "backup-agent"}),
        ISOLATION,
        "node a3-0: volumes[].fromContainer 'backup-agent' gives the container every volume of container "
        "backup-agent, host directories included, where no policy sees them; mount the paths it needs itself",
    ),
    # --- devices
    (
        "raw-disk",
        "a2",
        "a2-0-vllm",
        _device("/dev/sda"),
        ISOLATION,
        "node a2-0: host device /dev/sda is passed to the container, which then reads and writes it past every "
        f"other isolation check; pass only the NPU devices ({NPU_DEVICES})",
    ),
    (
        "host-memory-as-an-npu",  # the container path does not make it an NPU
        "a3",
        "a3-0-vllm",
        _device("/dev/mem", "/dev/davinci16"),
        ISOLATION,
        "node a3-0: host device /dev/mem is passed to the container, which then reads and writes it past every "
        f"other isolation check; pass only the NPU devices ({NPU_DEVICES})",
    ),
    (
        "device-cgroup-rule",
        "a2",
        "a2-1-vllm",
        set_input("deviceCgroupRules", ["b *:* rwm"]),
        ISOLATION,
        "node a2-1: deviceCgroupRules 'b *:* rwm' lets the container open host devices that devices does not "
        "pass (with Docker's default CAP_MKNOD, the host's disks); remove deviceCgroupRules: the NPUs need only "
        "devices",
    ),
    # --- confinement switched off
    (
        "seccomp-unconfined",
        "a2",
        "a2-0-vllm",
        set_input("securityOpts", ["no-new-privileges", "seccomp=unconfined"]),
        ISOLATION,
        "node a2-0: securityOpts 'seccomp=unconfined' turns off the seccomp filter that keeps the container from "
        "the kernel calls used to escape to the host; remove it from securityOpts",
    ),
    (
        "apparmor-unconfined-old-syntax",
        "a3",
        "a3-0-vllm",
        set_input("securityOpts", ["apparmor:unconfined"]),
        ISOLATION,
        "node a3-0: securityOpts 'apparmor:unconfined' turns off the AppArmor profile that keeps the container "
        "from mounting and from writing the host's /proc and /sys; remove it from securityOpts",
    ),
    (
        "selinux-label-disabled",
        "a2",
        "a2-1-vllm",
        set_input("securityOpts", ["label=disable"]),
        ISOLATION,
        "node a2-1: securityOpts 'label=disable' turns off the SELinux separation between the container and the "
        "host; remove it from securityOpts",
    ),
    (
        "system-paths-unmasked",
        "a3",
        "a3-0-vllm",
        set_input("securityOpts", ["systempaths=unconfined"]),
        ISOLATION,
        "node a3-0: securityOpts 'systempaths=unconfined' unmasks the /proc and /sys paths Docker hides from "
        "containers (/proc/sysrq-trigger, /proc/kcore, /sys/firmware, ...); remove it from securityOpts",
    ),
    (
        "host-user-namespace",
        "a2",
        "a2-0-vllm",
        set_input("usernsMode", "host"),
        PRIVILEGES,
        "node a2-0: usernsMode 'host' puts the serving container in the host's user namespace, so its root is the "
        "host's root even where the Docker engine remaps users (userns-remap); remove usernsMode, or state why in "
        'the pack config: "vllm-container-privileges": {"hostUsernsReason": "<reason>"}',
    ),
    (
        "host-cgroup-namespace",
        "a3",
        "a3-0-vllm",
        set_input("cgroupnsMode", "host"),
        PRIVILEGES,
        "node a3-0: cgroupnsMode 'host' puts the serving container in the host's cgroup namespace, so it sees the "
        "host's whole cgroup tree; remove cgroupnsMode, or state why in the pack config: "
        '"vllm-container-privileges": {"hostCgroupnsReason": "<reason>"}',
    ),
    # --- every container, not only vllm's: the local stack's Prometheus
    (
        "prometheus-capabilities",
        "local",
        "sim-0-prometheus",
        set_input("capabilities", {"adds": ["ALL"]}),
        PRIVILEGES,
        _privilege_message("node sim-0 (sim-0-prometheus)", "ALL"),
    ),
    (
        "prometheus-host-pid",
        "local",
        "sim-0-prometheus",
        set_input("pidMode", "host"),
        PRIVILEGES,
        "node sim-0 (sim-0-prometheus): pidMode 'host' puts the container in the host's PID namespace, so it can "
        "see, trace and signal every process on the host; remove pidMode, or state why in the pack config: "
        '"vllm-container-privileges": {"hostPidReason": "<reason>"}',
    ),
    (
        "prometheus-root-ssh",
        "local",
        "sim-0-prometheus",
        add_volume("/root/.ssh", "/ssh"),
        WRITABLE,
        "node sim-0 (sim-0-prometheus): /root/.ssh (in host system directory /root) is mounted writable at /ssh, "
        "so the container can change the host itself; remove that volume, or give it readOnly: true if the "
        "container must read it",
    ),
    (
        "prometheus-driver-parent",
        "local",
        "sim-0-prometheus",
        add_volume("/usr/local/Ascend", "/usr/local/Ascend"),
        ISOLATION,
        "node sim-0 (sim-0-prometheus): driver mount /usr/local/Ascend -> /usr/local/Ascend is writable, so the "
        "container could change the host's NPU driver; mount it with readOnly: true",
    ),
    (
        "prometheus-device",
        "local",
        "sim-0-prometheus",
        set_input("devices", [{"hostPath": "/dev/sdb", "containerPath": "/dev/sdb"}]),
        ISOLATION,
        "node sim-0 (sim-0-prometheus): host device /dev/sdb is passed to the container, which then reads and "
        f"writes it past every other isolation check; pass only the NPU devices ({NPU_DEVICES})",
    ),
    # --- M7: the Prometheus data directory in a system directory, in the container and in the step
    (
        "prometheus-data-dir-etc",
        "local",
        "sim-0-prometheus",
        _prometheus_data("/etc"),
        WRITABLE,
        "node sim-0 (sim-0-prometheus): host system directory /etc is mounted writable at /prometheus, so the "
        f"container can change the host itself; {PROMETHEUS_FIX}",
    ),
    (
        "owned-dir-step-etc",
        "local",
        "observability-prometheus-data",
        _owned_dir("/etc"),
        WRITABLE,
        "node sim-0 (observability-prometheus-data): step owned-dir makes host system directory /etc owned by uid "
        "65534, which hands the host's own files to that user (a path to root on the node); " + PROMETHEUS_FIX,
    ),
    (
        "owned-dir-step-host-root",
        "local",
        "observability-prometheus-data",
        _owned_dir("/"),
        WRITABLE,
        "node sim-0 (observability-prometheus-data): step owned-dir makes the host root / owned by uid 65534, "
        "which hands the host's own files to that user (a path to root on the node); " + PROMETHEUS_FIX,
    ),
    (
        "owned-dir-step-var-lib",
        "local",
        "observability-prometheus-data",
        _owned_dir("/var/lib"),
        WRITABLE,
        "node sim-0 (observability-prometheus-data): step owned-dir makes /var/lib (holding host system directory "
        "/var/lib/containerd) owned by uid 65534, which hands the host's own files to that user (a path to root on "
        "the node); " + PROMETHEUS_FIX,
    ),
    (
        "owned-dir-step-a-home",  # the program's own rule: a directory directly under /home is a user's
        "local",
        "observability-prometheus-data",
        _owned_dir("/home/ops"),
        WRITABLE,
        "node sim-0 (observability-prometheus-data): step owned-dir makes host directory /home/ops owned by uid "
        "65534, which hands the host's own files to that user (a path to root on the node); " + PROMETHEUS_FIX,
    ),
    # --- weightsDir in a system directory
    (
        "weights-dir-root-ssh",
        "a2",
        "a2-0-vllm",
        _weights_at("/root/.ssh"),
        WRITABLE,
        f"node a2-0: /root/.ssh (in host system directory /root) is mounted writable at {WEIGHTS_MOUNT}, so the "
        "serving container can change the host itself; set model.weightsDir to a directory of its own outside "
        f"the host system directories (e.g. /data/models), or leave it at its default {WEIGHTS_MOUNT}",
    ),
    (
        "weights-dir-cron",
        "a3",
        "a3-0-vllm",
        _weights_at("/etc/cron.d"),
        WRITABLE,
        f"node a3-0: /etc/cron.d (in host system directory /etc) is mounted writable at {WEIGHTS_MOUNT}, so the "
        "serving container can change the host itself; set model.weightsDir to a directory of its own outside "
        f"the host system directories (e.g. /data/models), or leave it at its default {WEIGHTS_MOUNT}",
    ),
    (
        "weights-dir-usr-local-bin",
        "a2",
        "a2-1-vllm",
        _weights_at("/usr/local/bin"),
        WRITABLE,
        f"node a2-1: /usr/local/bin (in host system directory /usr) is mounted writable at {WEIGHTS_MOUNT}, so "
        "the serving container can change the host itself; set model.weightsDir to a directory of its own "
        f"outside the host system directories (e.g. /data/models), or leave it at its default {WEIGHTS_MOUNT}",
    ),
    # --- credentials anywhere on the argv
    (
        "env-prefix-token",
        "a2",
        "a2-0-vllm",
        _command(lambda c: ["env", f"HF_TOKEN={HF}", *c]),
        SECRETS,
        f"node a2-0: HF_TOKEN=... passes a credential on the container's command line, {PLAIN_TEXT}; remove it "
        "and set `pulumi config set --secret hfToken <value>`: the container gets it as HF_TOKEN, off every "
        "command line",
    ),
    (
        "env-prefix-api-key",
        "a3",
        "a3-0-vllm",
        _command(lambda c: ["/usr/bin/env", "HCCL_BUFFSIZE=200", f"VLLM_API_KEY={SK}", *c]),
        SECRETS,
        f"node a3-0: VLLM_API_KEY=... passes a credential on the container's command line, {PLAIN_TEXT}; remove "
        "it and set `pulumi config set --secret apiKey <value>`: the container gets it as VLLM_API_KEY, off every "
        "command line",
    ),
    (
        "env-prefix-other-credential",
        "a3",
        "a3-0-vllm",
        _command(lambda c: ["env", "S3_SECRET_ACCESS_KEY=abc123", *c]),
        SECRETS,
        f"node a3-0: S3_SECRET_ACCESS_KEY=... passes a credential on the container's command line, {PLAIN_TEXT}; "
        "remove it from the command and set the variable as a secret instead (`pulumi config set --secret --path "
        "env.extra.S3_SECRET_ACCESS_KEY <value>`)",
    ),
    (
        "shell-assignment",
        "a3",
        "a3-0-vllm",
        _command(lambda c: ["sh", "-c", f"HF_TOKEN={HF} exec {shlex.join(c)}"]),
        SECRETS,
        f"node a3-0: HF_TOKEN=... passes a credential on the container's command line, {PLAIN_TEXT}; remove it "
        "and set `pulumi config set --secret hfToken <value>`: the container gets it as HF_TOKEN, off every "
        "command line",
    ),
    (
        "entrypoint-only",
        "a3",
        "a3-0-vllm",
        _entrypoint_only(["--api-key", "hunter2"]),
        SECRETS,
        f"node a3-0: --api-key passes a credential on the vllm serve command line, {PLAIN_TEXT}; remove it and set "
        "`pulumi config set --secret apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads "
        "like --api-key",
    ),
    (
        "python-m-api-server",
        "a3",
        "a3-0-vllm",
        _command(lambda c: [*_api_server(c), "--api-key", "hunter2"]),
        SECRETS,
        f"node a3-0: --api-key passes a credential on the vllm serve command line, {PLAIN_TEXT}; remove it and set "
        "`pulumi config set --secret apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads "
        "like --api-key",
    ),
    (
        "python3-m-vllm-serve",
        "a3",
        "a3-0-vllm",
        _command(lambda c: ["python3", "-m", "vllm", *c[1:], "--hf_tok", "x"]),
        SECRETS,
        f"node a3-0: --hf_tok passes a credential on the vllm serve command line, {PLAIN_TEXT}; remove it and set "
        "`pulumi config set --secret hfToken <value>`: the container gets it as HF_TOKEN, which vllm reads like "
        "--hf-token",
    ),
    (
        "python-m-cli-serve-in-a-shell",
        "a3",
        "a3-0-vllm",
        _command(
            lambda c: [
                "bash",
                "-lc",
                shlex.join(["python", "-m", "vllm.entrypoints.cli.main", *c[1:]]) + f" --api-key={SK}",
            ]
        ),
        SECRETS,
        f"node a3-0: --api-key passes a credential on the vllm serve command line, {PLAIN_TEXT}; remove it and set "
        "`pulumi config set --secret apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads "
        "like --api-key",
    ),
    (
        "wrapper-flag-before-vllm",
        "a2",
        "a2-1-vllm",
        set_input("entrypoints", ["/opt/site/launch", "--registry-token", "t0k3n", "--"]),
        SECRETS,
        f"node a2-1: --registry-token passes a credential on the container's command line, {PLAIN_TEXT}; remove it "
        "from serve.extraArgs and hand the value over in a secret environment variable (`pulumi config set "
        "--secret --path env.extra.<NAME> <value>`) that vllm reads instead",
    ),
    (
        "token-value-in-prometheus",
        "local",
        "sim-0-prometheus",
        _command(lambda c: [*c, f"--web.external-url=https://x/?t={HF}"]),
        SECRETS,
        f"node sim-0 (sim-0-prometheus): an argument passes a credential on the container's command line, "
        f"{PLAIN_TEXT}; remove it and hand the value to the container in a secret environment variable (its "
        "envs, as a Pulumi secret) or in a file it reads",
    ),
    (
        "health-check-token",
        "local",
        "sim-0-prometheus",
        set_input(
            "healthcheck",
            {"tests": ["CMD-SHELL", f"wget -qO- --header 'Authorization: Bearer {SK}' http://127.0.0.1:9090/-/ready"]},
        ),
        SECRETS,
        f"node sim-0 (sim-0-prometheus): an argument passes a credential on the container's health check command, "
        f"{PLAIN_TEXT}; remove it and let the check read the value from the container's secret environment "
        "through a shell builtin (`printf 'Authorization: Bearer %s\\n' \"$VLLM_API_KEY\" | curl -H @- ...` in a "
        "CMD-SHELL line)",
    ),
]

# Doors that legitimately open a second one too.
ALSO_REPORTED = {
    # a 17th /dev/davinciN for 16 ranks
    "host-memory-as-an-npu": {"vllm-npu-devices-match-parallelism"},
    # /usr/local/Ascend is below /usr as well as the driver's directory
    "prometheus-driver-parent": {WRITABLE},
}


@pytest.mark.parametrize("case", SIDE_DOORS, ids=[c[0] for c in SIDE_DOORS])
def test_side_door_is_reported(case):
    case_id, stack, resource, change, policy, expected = case
    found = run(mutate(graph(stack), resource, change))
    assert messages(found, policy) == [expected]
    assert {v.policy for v in found} - {policy} == ALSO_REPORTED.get(case_id, set()), found
    assert "\n" not in expected


# (id, stack, resource, change, policy)
NEAR_MISSES = [
    (
        "named-volume",
        "a2",
        "a2-0-vllm",
        _mounts({"type": "volume", "source": "hf-cache", "target": "/cache"}),
        ISOLATION,
    ),
    (
        "local-volume-nfs",  # the local driver mounting a remote export, not a host path
        "a3",
        "a3-0-vllm",
        _mounts(
            {
                "type": "volume",
                "target": "/models",
                "volumeOptions": {"driverOptions": {"type": "nfs", "o": "addr=192.0.2.5,ro", "device": ":/models"}},
            }
        ),
        ISOLATION,
    ),
    ("local-volume-data-disk", "a2", "a2-1-vllm", _mounts(_local_volume("/data/models", "/models")), WRITABLE),
    (
        "local-volume-other-driver",
        "a3",
        "a3-0-vllm",
        _mounts({**_local_volume("/", "/x"), "volumeOptions": {"driverName": "rexray/ebs", "driverOptions": {}}}),
        ISOLATION,
    ),
    ("tmpfs-mount", "a2", "a2-0-vllm", _mounts({"type": "tmpfs", "target": "/tmp"}), ISOLATION),
    ("npu-device-below-host-root", "a3", "a3-0-vllm", _device("/srv/npu/dev/davinci3", "/dev/davinci3"), ISOLATION),
    (
        "confinement-kept",
        "a2",
        "a2-1-vllm",
        set_input("securityOpts", ["no-new-privileges", "apparmor=docker-default", "seccomp=/etc/docker/seccomp.json"]),
        ISOLATION,
    ),
    (
        "private-user-and-cgroup",
        "a3",
        "a3-0-vllm",
        both(set_input("usernsMode", ""), set_input("cgroupnsMode", "private")),
        PRIVILEGES,
    ),
    ("no-device-rules", "a2", "a2-0-vllm", set_input("deviceCgroupRules", []), ISOLATION),
    ("prometheus-data-below-var-lib", "local", "sim-0-prometheus", _prometheus_data("/var/lib/prom"), WRITABLE),
    ("owned-dir-step-deep-below-var", "local", "observability-prometheus-data", _owned_dir("/var/lib/prom"), WRITABLE),
    (
        "variable-named-on-the-command-line",  # the environment holds the value; the command names it
        "a3",
        "a3-0-vllm",
        _command(lambda c: ["sh", "-c", 'HF_TOKEN="${HF_TOKEN:?}" HF_HUB_OFFLINE=1 exec ' + shlex.join(c)]),
        SECRETS,
    ),
    (
        "health-check-without-credentials",
        "a2",
        "a2-0-vllm",
        set_input("healthcheck", {"tests": ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"]}),
        SECRETS,
    ),
    ("env-prefix-plain-settings", "a2", "a2-0-vllm", _command(lambda c: ["env", "HCCL_BUFFSIZE=200", *c]), SECRETS),
    (
        "key-file-of-another-program",
        "local",
        "sim-0-prometheus",
        _command(lambda c: [*c, "--tls-key-file=/etc/prometheus/key.pem", "--web.token-file", "/run/token"]),
        SECRETS,
    ),
    (
        "api-server-without-credentials",
        "a3",
        "a3-0-vllm",
        _command(lambda c: [*_api_server(c), "--ssl-keyfile", "/certs/key.pem"]),
        SECRETS,
    ),
]


@pytest.mark.parametrize("case", NEAR_MISSES, ids=[c[0] for c in NEAR_MISSES])
def test_near_miss_passes(case):
    _, stack, resource, change, policy = case
    assert run(mutate(graph(stack), resource, change), only=policy) == []


def test_vllm_through_python_is_a_vllm_container():
    # The same node served through the API server module: every other policy reads it as before.
    assert run(mutate(graph("a3"), "a3-0-vllm", _command(_api_server))) == []


# --- a docker.Volume that binds a host path -----------------------------------------------------


def _volume(g: list, name: str, device: str, o: str = "bind", driver: str | None = None) -> Node:
    """A docker.Volume on a2-0's Docker engine, and a2-0's vllm container mounting it."""
    provider = named(g, "a2-0-vllm").provider
    urn = f"urn:pulumi:a2::deepseek-r1-ascend::docker:index/volume:Volume::{name}"
    inputs = {"name": name, "driverOpts": {"type": "none", "o": o, "device": device}}
    if driver is not None:
        inputs["driver"] = driver
    named(g, "a2-0-vllm").inputs["volumes"].append({"volumeName": name, "containerPath": "/mnt/x"})
    return Node("docker:index/volume:Volume", name, urn, inputs, provider=provider)


@pytest.mark.parametrize(
    "device, o, policy, expected",
    [
        (
            "/",
            "bind",
            ISOLATION,
            "node 192.0.2.11 (volume rootfs): the host root / is mounted through this local-driver volume (o=bind) "
            "wherever a container mounts it, which exposes the whole host; mount only the paths the container needs",
        ),
        (
            "/run",
            "rbind",
            ISOLATION,
            "node 192.0.2.11 (volume rootfs): /run (holding /run/docker.sock) is mounted through this local-driver "
            "volume (o=bind) wherever a container mounts it, which gives the container root on the host through "
            "the container engine; remove that volume",
        ),
        (
            "/etc",
            "bind",
            WRITABLE,
            "node 192.0.2.11 (volume rootfs): host system directory /etc is mounted writable through this "
            "local-driver volume (o=bind) wherever a container mounts it, so the container can change the host "
            "itself; remove that volume, or bind it read-only (o: bind,ro) if a container must read it",
        ),
        (
            "/root",
            "bind,ro",
            READ_ONLY,
            "node 192.0.2.11 (volume rootfs): host system directory /root is mounted read-only through this "
            "local-driver volume (o=bind) wherever a container mounts it, which shows the container the host's "
            "files (configuration, keys, other services' state); remove that volume, or bind it read-only "
            "(o: bind,ro) if a container must read it",
        ),
    ],
    ids=["host-root", "engine-socket", "etc", "root-read-only"],
)
def test_a_volume_binding_a_host_path_is_reported_at_the_volume(device, o, policy, expected):
    g = graph("a2")
    g.append(_volume(g, "rootfs", device, o))
    found = run(g)
    assert [(v.policy, v.message) for v in found] == [(policy, expected)]


@pytest.mark.parametrize(
    "device, o, driver",
    [
        ("/data/models", "bind", None),
        ("/", "addr=192.0.2.5", None),
        ("/", "bind", "rexray/ebs"),
        ("/", UNKNOWN_STRING_VALUE, None),
    ],
    ids=["data-disk", "not-a-bind", "other-driver", "unknown-at-preview"],
)
def test_volumes_that_bind_no_host_system_path_pass(device, o, driver):
    g = graph("a2")
    g.append(_volume(g, "data", device, o, driver))
    assert run(g) == []


# --- the privileged exemption is keyed to a pinned image ----------------------------------------

PRIVILEGED_POLICY = "vllm-container-host-isolation"
DIGEST = "sha256:" + "ab" * 32
EXPORTER_REF = f"site.example/ascend/npu-exporter@{DIGEST}"


def _privileged(image: str | None = None):
    def change(inputs):
        inputs["privileged"] = True
        if image is not None:
            inputs["image"] = image

    return change


def _allowed(*images: str, reason: str = "reads every chip through the driver") -> dict:
    return {PRIVILEGED_POLICY: {"privilegedImages": dict.fromkeys(images, reason)}}


def test_a_privileged_container_names_the_image_to_allow():
    g = mutate(graph("local"), "sim-0-prometheus", _privileged())
    image = named(g, "sim-0-prometheus").inputs["image"]
    assert messages(run(g), PRIVILEGED_POLICY) == [
        "node sim-0 (sim-0-prometheus): the container runs privileged, which hands it every host device and "
        "capability; pass it the devices it needs instead, or, if this exact image must run privileged, name it "
        f'in the pack config: "vllm-container-host-isolation": {{"privilegedImages": {{"{image}": "<reason>"}}}}'
    ]
    assert run(g, config=_allowed(image)) == []


def test_a_tag_is_no_pinned_image():
    g = mutate(graph("local"), "sim-0-prometheus", _privileged("site.example/ascend/npu-exporter:v6.0.0"))
    config = _allowed("site.example/ascend/npu-exporter:v6.0.0")
    assert messages(run(g, config=config), PRIVILEGED_POLICY) == [
        "node sim-0 (sim-0-prometheus): the container runs privileged, which hands it every host device and "
        "capability; pass it the devices it needs instead, or, if its image site.example/ascend/npu-exporter:v6.0.0 "
        "must run privileged, pin it by digest and name it in the pack config: "
        '"vllm-container-host-isolation": {"privilegedImages": {"<image id or reference@sha256:digest>": '
        '"<reason>"}}'
    ]


@pytest.mark.parametrize(
    "image, config, allowed",
    [
        (EXPORTER_REF, _allowed(EXPORTER_REF), True),
        (EXPORTER_REF, _allowed(DIGEST), True),  # the digest names the build whatever the repository
        (EXPORTER_REF, _allowed(f"other.example/npu-exporter@{DIGEST}".replace("ab", "cd")), False),
        (EXPORTER_REF, _allowed(EXPORTER_REF, reason=" "), False),  # a blank reason allows nothing
        (EXPORTER_REF, {}, False),
        (UNKNOWN_STRING_VALUE, _allowed(DIGEST), True),  # which image comes at `pulumi up`
        (UNKNOWN_STRING_VALUE, {}, False),  # nothing could allow it
    ],
    ids=["reference", "digest", "other-image", "blank-reason", "unconfigured", "unknown", "unknown-unconfigured"],
)
def test_the_exemption_follows_the_configured_image(image, config, allowed):
    g = mutate(graph("local"), "sim-0-prometheus", _privileged(image))
    assert (run(g, only=PRIVILEGED_POLICY, config=config) == []) == allowed


def test_a_label_or_a_program_name_allows_nothing():
    # What the exemption was keyed to before: the npu-exporter role label and its program name.
    def as_exporter(inputs):
        _privileged()(inputs)
        inputs["command"] = ["npu-exporter", "-port=8082"]
        for label in inputs["labels"]:
            if label["label"] == "deepseek-r1-ascend.role":
                label["value"] = "npu-exporter"

    found = run(mutate(graph("local"), "sim-0-prometheus", as_exporter), only=PRIVILEGED_POLICY)
    assert [v.message.split(";")[0] for v in found] == [
        "node sim-0 (sim-0-prometheus): the container runs privileged, which hands it every host device and capability"
    ]


def test_a_vllm_container_never_runs_privileged_whatever_its_image():
    g = mutate(graph("a2"), "a2-1-vllm", _privileged())
    config = _allowed(named(g, "a2-1-vllm").inputs["image"])
    assert messages(run(g, config=config), PRIVILEGED_POLICY) == [
        "node a2-1: the container runs privileged, which hands it every host device and capability; set "
        "container.privileged to false (the NPUs are passed as devices)"
    ]


# --- reasons, and what a message never shows ----------------------------------------------------


def test_host_user_and_cgroup_namespaces_need_their_own_reason():
    g = mutate(graph("a2"), "a2-0-vllm", both(set_input("usernsMode", "host"), set_input("cgroupnsMode", "host")))
    config = {PRIVILEGES: {"hostUsernsReason": "the engine remaps users and this container writes as root"}}
    found = messages(run(g, config=config), PRIVILEGES)
    assert len(found) == 1 and found[0].startswith("node a2-0: cgroupnsMode 'host' ")


@pytest.mark.parametrize(
    "change",
    [
        _command(lambda c: ["env", f"HF_TOKEN={HF}", *c]),
        _command(lambda c: ["sh", "-c", f"VLLM_API_KEY={SK} exec {shlex.join(c)}"]),
        _command(lambda c: [*_api_server(c), "--api-key", SK]),
        _entrypoint_only(["--hf-token", HF]),
    ],
    ids=["env", "shell", "api-server", "entrypoint"],
)
def test_no_credential_value_in_a_message(change):
    found = run(mutate(graph("a3"), "a3-0-vllm", change))
    assert messages(found, SECRETS)
    assert not [v for v in found if HF in v.message or SK in v.message]


def test_every_policy_of_the_pack_is_still_listed():
    # These doors were closed inside the existing policies: no new name to configure.
    names = {p.name for p in policies.POLICIES}
    assert {c[4] for c in SIDE_DOORS} | {n[4] for n in NEAR_MISSES} <= names


# --- the README shows what the pack says --------------------------------------------------------

README_EXAMPLES = (
    "local-volume-binds-host-root",
    "raw-disk",
    "device-cgroup-rule",
    "seccomp-unconfined",
    "volumes-from-another-container",
    "prometheus-capabilities",
    "host-user-namespace",
    "weights-dir-root-ssh",
    "prometheus-data-dir-etc",
    "owned-dir-step-etc",
    "env-prefix-token",
)


def test_the_readme_shows_these_messages():
    readme = (POLICY_DIR / "README.md").read_text()
    by_id = {c[0]: c[5] for c in SIDE_DOORS}
    for case_id in README_EXAMPLES:
        message = by_id[case_id]
        shown = f"``{message}``" if "`" in message else f"`{message}`"
        assert shown in readme, case_id
    g = graph("a2")
    g.append(_volume(g, "rootfs", "/"))
    [volume] = run(g)
    assert f"`{volume.message}`" in readme
