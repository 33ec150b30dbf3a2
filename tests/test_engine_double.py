"""The engine double keeps the rules of ../shared/reference/pulumi-engine-semantics.md, one test
per rule on a tiny program, then multi-run scenarios on the real program."""

import copy

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pytest
from engine_double import CommandFailed, EngineDouble, unknown_paths
from mocked import stack_settings

LOCAL = "command:local:Command"


class Host:
    """Answers commands by name; records each script it ran."""

    def __init__(self, **exit_codes: int):
        self.exit_codes = exit_codes
        self.scripts: list[tuple[str, str]] = []

    def __call__(self, type_: str, name: str, inputs: dict, script: str) -> tuple[int, str, str]:
        self.scripts.append((name, script))
        code = self.exit_codes.get(name, 0)
        return code, f"{name} said: {script}", "boom" if code else ""


def engine_for(declare, host: Host | None = None) -> tuple[EngineDouble, dict]:
    """An engine whose program calls `declare(settings)`; tests change `settings` between runs."""
    settings: dict = {}
    engine = EngineDouble(runner=host or Host(), program=lambda: declare(settings))
    return engine, settings


def one_command(settings: dict) -> None:
    cmd = command.local.Command("check", create=settings.get("create", "echo hi"), **settings.get("args", {}))
    pulumi.export("stdout", cmd.stdout)


# --- state across runs ---------------------------------------------------------------------


def test_unchanged_inputs_run_nothing_and_outputs_come_from_state():
    host = Host()
    engine, _ = engine_for(one_command, host)
    first = engine.up({})
    second = engine.up({})
    assert first.steps == [("create", "check")] and first.ran == ["check"]
    assert second.steps == [] and second.ran == []
    assert second.deployment.outputs["stdout"] == "check said: echo hi"
    assert len(host.scripts) == 1


def test_exit_zero_saves_stdout_whatever_it_says():
    engine, settings = engine_for(one_command, Host())
    settings["create"] = "echo FAILED: disk full"
    engine.up({})
    again = engine.up({})
    assert again.ran == []
    assert again.deployment.outputs["stdout"] == "check said: echo FAILED: disk full"


def test_a_failed_create_is_not_saved_and_the_next_up_runs_it_again():
    host = Host(check=1)
    engine, _ = engine_for(one_command, host)
    failed = engine.up({})
    assert isinstance(failed.error, CommandFailed) and failed.failed == ["check"]
    assert "process exited with status 1" in str(failed.error)
    assert engine.state == {}
    host.exit_codes.clear()
    retry = engine.up({})
    assert retry.error is None and retry.steps == [("create", "check")]
    assert engine.up({}).steps == []


def test_a_failed_update_keeps_the_old_state_and_is_retried():
    host = Host()
    engine, settings = engine_for(one_command, host)
    engine.up({})
    settings["args"] = {"environment": {"A": "1"}}
    host.exit_codes["check"] = 1
    assert engine.up({}).failed == ["check"]
    host.exit_codes.clear()
    assert engine.up({}).updated == ["check"]


# --- pulumi-command diffs --------------------------------------------------------------------


def test_a_changed_trigger_replaces_a_command_delete_first():
    engine, settings = engine_for(one_command, Host())
    settings["args"] = {"triggers": ["v1"]}
    engine.up({})
    settings["args"] = {"triggers": ["v2"]}
    run = engine.up({})
    assert run.steps == [("delete-replaced", "check"), ("create-replacement", "check")]
    assert run.replaced == ["check"] and run.ran == ["check"]


@pytest.mark.parametrize(
    "change",
    [
        {"environment": {"A": "1"}},
        {"stdin": "secret\n"},
        {"logging": "none"},
        {"interpreter": ["/bin/bash", "-c"]},
        {"create": "echo changed"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_other_input_change_is_an_update_that_runs_create_again(change):
    host = Host()
    engine, settings = engine_for(one_command, host)
    engine.up({})
    if "create" in change:
        settings["create"] = change["create"]
    else:
        settings["args"] = change
    run = engine.up({})
    assert run.steps == [("update", "check")] and run.ran == ["check"]
    assert host.scripts[-1] == ("check", settings.get("create", "echo hi"))


def test_a_connection_change_updates_a_remote_command():
    def remote(settings):
        connection = command.remote.ConnectionArgs(host="192.0.2.1", user=settings.get("user", "root"))
        command.remote.Command("probe", connection=connection, create="uptime")

    engine, settings = engine_for(remote, Host())
    engine.up({})
    settings["user"] = "admin"
    assert engine.up({}).steps == [("update", "probe")]


def test_an_update_script_runs_instead_of_create_and_its_stdout_replaces_the_saved_one():
    host = Host()
    engine, settings = engine_for(one_command, host)
    settings["args"] = {"update": ":"}
    engine.up({})
    settings["args"] = {"update": ":", "environment": {"A": "1"}}
    run = engine.up({})
    assert run.updated == ["check"] and host.scripts[-1] == ("check", ":")
    assert run.deployment.outputs["stdout"] == "check said: :"


def test_ignore_changes_keeps_the_saved_value():
    def declare(settings):
        command.local.Command(
            "check",
            create="true",
            environment=settings.get("env"),
            opts=pulumi.ResourceOptions(ignore_changes=["environment"]),
        )

    engine, settings = engine_for(declare, Host())
    settings["env"] = {"A": "1"}
    engine.up({})
    settings["env"] = {"A": "2"}
    assert engine.up({}).steps == []


def test_a_removed_command_is_deleted_and_runs_its_delete_script_only():
    host = Host()

    def declare(settings):
        if settings.get("keep", True):
            command.local.Command("with-delete", create="touch x", delete="rm x")
            command.local.Command("plain", create="true")

    engine, settings = engine_for(declare, host)
    engine.up({})
    settings["keep"] = False
    run = engine.up({})
    assert sorted(run.deleted) == ["plain", "with-delete"]
    assert run.ran == ["with-delete"] and host.scripts[-1] == ("with-delete", "rm x")
    assert engine.state == {}


# --- pulumi-docker diffs ---------------------------------------------------------------------


def containers(settings: dict) -> None:
    image = docker.RemoteImage("image", name=settings.get("image", "vllm:1"), keep_locally=settings.get("keep", True))
    docker.Container(
        "vllm",
        name="vllm",
        image=image.image_id,
        envs=settings.get("envs", ["A=1"]),
        labels=[docker.ContainerLabelArgs(label="l", value=settings.get("label", "x"))],
        restart=settings.get("restart", "no"),
        destroy_grace_seconds=settings.get("grace"),
        opts=pulumi.ResourceOptions(
            delete_before_replace=settings.get("dbr", False), replacement_trigger=settings.get("trigger")
        ),
    )


@pytest.mark.parametrize("change", [{"envs": ["A=2"]}, {"label": "y"}, {"image": "vllm:2"}])
def test_container_inputs_replace_create_before_delete_by_default(change):
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(change)
    run = engine.up({})
    assert "vllm" in run.replaced
    steps = [s for s in run.steps if s[1] == "vllm"]
    assert steps == [("create-replacement", "vllm"), ("delete-replaced", "vllm")]


def test_delete_before_replace_deletes_the_old_container_first():
    engine, settings = engine_for(containers)
    settings["dbr"] = True
    engine.up({})
    settings["envs"] = ["A=2"]
    assert engine.up({}).steps == [("delete-replaced", "vllm"), ("create-replacement", "vllm")]


@pytest.mark.parametrize("change", [{"restart": "always"}, {"grace": 60}])
def test_restart_and_grace_period_change_a_container_in_place(change):
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(change)
    assert engine.up({}).steps == [("update", "vllm")]


def test_image_name_replaces_keep_locally_updates():
    engine, settings = engine_for(containers)
    engine.up({})
    settings["keep"] = False
    assert engine.up({}).steps == [("update", "image")]
    settings["image"] = "vllm:2"
    # A new image id replaces the container too.
    assert engine.up({}).replaced == ["image", "vllm"]


def test_replacement_trigger_fires_on_change_but_never_from_or_to_unset():
    engine, settings = engine_for(containers)
    engine.up({})
    settings["trigger"] = "group-1"
    assert engine.up({}).steps == []
    settings["trigger"] = "group-2"
    assert engine.up({}).replaced == ["vllm"]
    settings["trigger"] = None
    assert engine.up({}).steps == []


def test_a_changed_provider_configuration_updates_the_provider_only():
    def declare(settings):
        provider = docker.Provider("node", host="ssh://root@192.0.2.1", ssh_opts=settings.get("opts"))
        docker.RemoteImage("image", name="vllm:1", opts=pulumi.ResourceOptions(provider=provider))

    engine, settings = engine_for(declare)
    engine.up({})
    settings["opts"] = ["-o", "BatchMode=yes"]
    assert engine.up({}).steps == [("update", "node")]


# --- renames ---------------------------------------------------------------------------------


def renamed(settings: dict) -> None:
    aliases = [pulumi.Alias(name=settings["old"])] if settings.get("old") else None
    command.local.Command(settings.get("name", "a"), create="true", opts=pulumi.ResourceOptions(aliases=aliases))


def test_a_renamed_resource_is_a_new_one_created_before_the_old_is_deleted():
    engine, settings = engine_for(renamed, Host())
    engine.up({})
    settings["name"] = "b"
    assert engine.up({}).steps == [("create", "b"), ("delete", "a")]


def test_an_alias_carries_the_old_state_to_the_new_name():
    engine, settings = engine_for(renamed, Host())
    engine.up({})
    settings.update(name="b", old="a")
    assert engine.up({}).steps == []
    assert [(urn.rsplit("::", 1)[1], saved.name) for urn, saved in engine.state.items()] == [("b", "b")]


def test_children_named_after_a_renamed_component_inherit_its_alias():
    class Box(pulumi.ComponentResource):
        def __init__(self, name, opts=None):
            super().__init__("test:index:Box", name, None, opts)
            command.local.Command(f"{name}-inside", create="true", opts=pulumi.ResourceOptions(parent=self))
            command.local.Command("elsewhere", create="true", opts=pulumi.ResourceOptions(parent=self))

    def declare(settings):
        aliases = [pulumi.Alias(name=settings["old"])] if settings.get("old") else None
        Box(settings.get("name", "a"), opts=pulumi.ResourceOptions(aliases=aliases))

    engine, settings = engine_for(declare, Host())
    engine.up({})
    settings.update(name="b", old="a")
    assert engine.up({}).steps == []
    assert sorted(saved.name for saved in engine.state.values()) == ["b-inside", "elsewhere"]


# --- preview ---------------------------------------------------------------------------------


def chain(settings: dict) -> None:
    first = command.local.Command("first", create="hostname")
    second = command.local.Command("second", create=first.stdout.apply(lambda out: f"echo {out}"))
    pulumi.export("second", second.stdout)


def test_preview_leaves_what_is_not_created_yet_unknown_and_runs_nothing():
    engine, _ = engine_for(chain)
    preview = engine.preview({})
    assert preview.steps == [("create", "first"), ("create", "second")] and preview.ran == []
    assert unknown_paths(preview.deployment.named("second").inputs) == ["create"]
    assert engine.state == {}
    engine.up({})
    after = engine.preview({})
    assert after.steps == [] and unknown_paths(after.deployment.named("second").inputs) == []


# --- the real program ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def a2():
    return stack_settings("a2")


def test_a_second_up_with_no_change_runs_nothing(a2):
    engine = EngineDouble(stack="a2")
    first = engine.up(a2)
    assert first.error is None and "a2-0-vllm" in first.created and "deepseek-r1-readiness" in first.ran
    second = engine.up(a2)
    assert second.error is None
    assert second.steps == [] and second.ran == []


def test_one_serve_flag_replaces_every_container_old_one_first(a2):
    engine = EngineDouble(stack="a2")
    engine.up(a2)
    changed = copy.deepcopy(a2)
    changed["serve"] = {"maxNumSeqs": 32}
    run = engine.up(changed)
    assert run.error is None
    assert {"a2-0-vllm", "a2-1-vllm"} <= set(run.replaced)
    for container in ("a2-0-vllm", "a2-1-vllm"):
        steps = [op for op, name in run.steps if name == container]
        assert steps == ["delete-replaced", "create-replacement"]


def test_a_changed_observability_setting_replaces_prometheus_old_one_first():
    local = stack_settings("local")
    engine = EngineDouble(stack="local")
    engine.up(local)
    changed = copy.deepcopy(local)
    changed["observability"]["prometheus"]["scrapeIntervalSeconds"] = 2
    run = engine.up(changed)
    assert [s for s in run.steps if s[1] == "sim-0-prometheus"] == [
        ("delete-replaced", "sim-0-prometheus"),
        ("create-replacement", "sim-0-prometheus"),
    ]
    assert not [name for _, name in run.steps if name.endswith("-vllm")]
