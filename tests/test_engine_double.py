"""The engine double keeps the rules the Pulumi engine, pulumi-command and pulumi-docker keep, one
test per rule on a tiny program, each naming its source; then the rules on the real program.

Sources (as ../shared/reviews/engine-double.md read them): pulumi/pulumi v3.259
`pkg/resource/deploy/{step_generator,step,step_executor,deployment_executor,source_eval}.go`;
pulumi-command v1.2.1 `provider/pkg/provider/{local,remote}/` with pulumi-go-provider v1.3.0
`infer/resource.go`; pulumi-docker v5.1 `provider/resources.go` over terraform-provider-docker
v4.5.0 `internal/provider/resource_docker_container{,_funcs}.go` and pulumi-terraform-bridge
`pkg/tfbridge/provider.go`. Where ../shared/reference/pulumi-engine-semantics.md disagreed, the
source won.
"""

import asyncio
import copy

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pytest
from engine_double import CommandFailed, ContainerFailed, EngineDouble, UnknownTrigger, most_out, unknown_paths
from mocked import stack_settings


class Host:
    """Answers commands by name; records each script it ran and the previous output it was given."""

    def __init__(self, **exit_codes: int):
        self.exit_codes = exit_codes
        self.failing_scripts: set[str] = set()
        self.scripts: list[tuple[str, str]] = []
        self.previous: list[str | None] = []

    def __call__(self, type_: str, name: str, inputs: dict, script: str) -> tuple[int, str, str]:
        self.scripts.append((name, script))
        self.previous.append((inputs.get("environment") or {}).get("PULUMI_COMMAND_STDOUT"))
        code = 1 if script in self.failing_scripts else self.exit_codes.get(name, 0)
        return code, f"{name} said: {script}", "boom" if code else ""


def engine_for(declare, host: Host | None = None) -> tuple[EngineDouble, dict]:
    """An engine whose program calls `declare(settings)`; tests change `settings` between runs."""
    settings: dict = {}
    engine = EngineDouble(runner=host or Host(), program=lambda: declare(settings))
    return engine, settings


def made(value):
    """Settings that hold Outputs are made inside the program's event loop."""
    return value() if callable(value) else value


def one_command(settings: dict) -> None:
    cmd = command.local.Command(
        "check",
        create=settings.get("create", "echo hi"),
        **made(settings.get("args", {})),
        opts=pulumi.ResourceOptions(delete_before_replace=settings.get("dbr")),
    )
    pulumi.export("stdout", cmd.stdout)


# --- state across runs ---------------------------------------------------------------------


def test_unchanged_inputs_run_nothing_and_outputs_come_from_state():
    # step_generator.go continueStepsFromDiff: no diff is a SameStep, which keeps the old outputs.
    host = Host()
    engine, _ = engine_for(one_command, host)
    first = engine.up({})
    second = engine.up({})
    assert first.steps == [("create", "check")] and first.ran == ["check"]
    assert second.steps == [] and second.ran == []
    assert second.deployment.outputs["stdout"] == "check said: echo hi"
    assert len(host.scripts) == 1


def test_exit_zero_saves_stdout_whatever_it_says():
    # pulumi-command local/commandOutputs.go run: exit status 0 is success, whatever stdout says.
    engine, settings = engine_for(one_command, Host())
    settings["create"] = "echo FAILED: disk full"
    engine.up({})
    again = engine.up({})
    assert again.ran == []
    assert again.deployment.outputs["stdout"] == "check said: echo FAILED: disk full"


def test_a_failed_create_is_not_saved_and_the_next_up_runs_it_again():
    # pulumi-go-provider infer/resource.go Create: an error returns no properties, nothing is saved.
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
    # infer/resource.go Update: the error carries no properties, so the old state stays.
    host = Host()
    engine, settings = engine_for(one_command, host)
    engine.up({})
    settings["args"] = {"environment": {"A": "1"}}
    host.exit_codes["check"] = 1
    assert engine.up({}).failed == ["check"]
    host.exit_codes.clear()
    assert engine.up({}).updated == ["check"]


# --- pulumi-command diffs --------------------------------------------------------------------


def with_delete(settings: dict) -> None:
    command.local.Command(
        "member",
        create="add",
        delete="drain",
        triggers=[settings.get("trigger", "v1")],
        opts=pulumi.ResourceOptions(delete_before_replace=settings.get("dbr")),
    )
    if settings.get("fail_program"):
        pulumi.Output.from_input(1).apply(lambda _: 1 / 0)


def test_a_changed_trigger_replaces_a_command_create_first_and_deletes_the_old_one_last():
    # infer/resource.go diff(): "DeleteBeforeReplace: ???", the provider never asks for it, so
    # step_generator.go continueStepsFromDiff takes the create-before-delete path; the old one's
    # delete is "generated later on, after all creates/updates finish" (GenerateDeletes), and
    # gets its saved stdout (local/commandOutputs.go run, only when not empty).
    host = Host()
    engine, settings = engine_for(with_delete, host)
    engine.up({})
    settings["trigger"] = "v2"
    run = engine.up({})
    assert sorted(run.steps) == [("create-replacement", "member"), ("delete-replaced", "member")]
    assert run.before(("create-replacement", "member"), ("delete-replaced", "member"))
    assert host.scripts[-2:] == [("member", "add"), ("member", "drain")]
    assert host.previous[-1] == "member said: add"


def test_delete_before_replace_makes_a_command_delete_first():
    # step_generator.go continueStepsFromDiff: goal.DeleteBeforeReplace overrides the provider.
    host = Host()
    engine, settings = engine_for(with_delete, host)
    settings["dbr"] = True
    engine.up({})
    settings["trigger"] = "v2"
    run = engine.up({})
    assert run.before(("delete-replaced", "member"), ("create-replacement", "member"))
    assert host.scripts[-2:] == [("member", "drain"), ("member", "add")]


def test_a_failed_create_first_replacement_leaves_the_old_one_and_never_deletes_it():
    # step.go CreateStep.Apply marks the old resource for deletion only after the create succeeded.
    host = Host()
    engine, settings = engine_for(with_delete, host)
    engine.up({})
    settings["trigger"] = "v2"
    host.exit_codes["member"] = 1
    failed = engine.up({})
    assert failed.steps == [("create-replacement", "member")] and engine.pending_delete == []
    assert engine.saved("member").inputs["triggers"] == ["v1"]
    host.exit_codes.clear()
    retry = engine.up({})
    assert sorted(retry.steps) == [("create-replacement", "member"), ("delete-replaced", "member")]
    assert [script for _, script in host.scripts].count("drain") == 1


def test_old_resources_wait_for_a_run_that_succeeds_to_be_deleted():
    # deployment_executor.go: performPostSteps (the deletes) runs only when nothing failed.
    host = Host()
    engine, settings = engine_for(with_delete, host)
    engine.up({})
    settings.update(trigger="v2", fail_program=True)
    failed = engine.up({})
    assert failed.error is not None and failed.steps == [("create-replacement", "member")]
    assert "drain" not in [script for _, script in host.scripts]
    settings["fail_program"] = False
    assert engine.up({}).steps == [("delete-replaced", "member")]


def test_a_failed_delete_first_create_is_created_on_the_next_up_without_a_second_delete():
    # step_generator.go: the old resource stays PendingReplacement, and `old.PendingReplacement`
    # forces a replace (with no delete) on the next up, even with the inputs reverted.
    host = Host()
    engine, settings = engine_for(with_delete, host)
    settings["dbr"] = True
    engine.up({})
    settings["trigger"] = "v2"
    host.failing_scripts.add("add")
    assert engine.up({}).steps == [("delete-replaced", "member"), ("create-replacement", "member")]
    host.failing_scripts.clear()
    settings["trigger"] = "v1"
    assert engine.up({}).steps == [("create-replacement", "member")]
    assert [script for _, script in host.scripts].count("drain") == 1


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
    # common/inputs.go: only `triggers` is replaceOnChanges; local/commandController.go Update
    # runs `update`, else `create`.
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
    # remote/commandController.go: `connection` is not replaceOnChanges.
    def remote(settings):
        connection = command.remote.ConnectionArgs(host="192.0.2.1", user=settings.get("user", "root"))
        command.remote.Command("probe", connection=connection, create="uptime")

    engine, settings = engine_for(remote, Host())
    engine.up({})
    settings["user"] = "admin"
    assert engine.up({}).steps == [("update", "probe")]


def test_an_update_script_runs_instead_of_create_and_its_stdout_replaces_the_saved_one():
    # local/commandController.go Update; add_previous_output_in_env defaults to true.
    host = Host()
    engine, settings = engine_for(one_command, host)
    settings["args"] = {"update": ":"}
    engine.up({})
    settings["args"] = {"update": ":", "environment": {"A": "1"}}
    run = engine.up({})
    assert run.updated == ["check"] and host.scripts[-1] == ("check", ":")
    assert host.previous[-1] == "check said: echo hi"
    assert run.deployment.outputs["stdout"] == "check said: :"


@pytest.mark.parametrize(
    "before, after, step",
    [
        ({"environment": {"A": "1"}}, lambda: {"environment": {"A": pulumi.Output.secret("1")}}, "update"),
        ({"triggers": ["v1"]}, lambda: {"triggers": [pulumi.Output.secret("v1")]}, "create-replacement"),
    ],
    ids=["input", "trigger"],
)
def test_a_value_marked_secret_is_a_change_for_pulumi_command(before, after, step):
    # pulumi-go-provider provider.go getMap (KeepSecrets) and infer diff() with DeepEquals
    # (sdk properties_diff.go): a secret never equals plain text, the same value or not.
    engine, settings = engine_for(one_command, Host())
    settings["args"] = before
    engine.up({})
    settings["args"] = after
    run = engine.up({})
    assert [op for op, _ in run.steps if op != "delete-replaced"] == [step]


def test_ignore_changes_keeps_the_saved_value():
    # step_generator.go processIgnoreChanges.
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
    # local/commandController.go Delete runs `delete` if set, nothing otherwise.
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
    provider = docker.Provider("node", host=settings.get("host", "ssh://root@192.0.2.1"))
    on_node = pulumi.ResourceOptions(provider=provider)
    image = docker.RemoteImage(
        "image", name=settings.get("image", "vllm:1"), keep_locally=settings.get("keep", True), opts=on_node
    )
    docker.Container(
        "vllm",
        name="vllm",
        image=image.image_id,
        envs=made(settings.get("envs", ["A=1"])),
        labels=[docker.ContainerLabelArgs(label="l", value=settings.get("label", "x"))],
        restart=settings.get("restart", "no"),
        command=settings.get("command"),
        destroy_grace_seconds=settings.get("grace"),
        opts=pulumi.ResourceOptions.merge(
            on_node,
            pulumi.ResourceOptions(
                delete_before_replace=settings.get("dbr"),
                replacement_trigger=made(settings.get("trigger")),
                replace_on_changes=settings.get("replace_on"),
            ),
        ),
    )


def vllm_steps(run) -> list[str]:
    return [op for op, name in run.steps if name == "vllm"]


@pytest.mark.parametrize("change", [{"envs": ["A=2"]}, {"label": "y"}, {"image": "vllm:2"}])
def test_a_container_input_change_replaces_delete_first_by_the_provider_s_default(change):
    # pulumi-docker provider/resources.go: docker_container has DeleteBeforeReplace: true; the
    # bridge's Diff returns it whenever a ForceNew attribute changed (tfbridge/provider.go).
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(change)
    run = engine.up({})
    assert run.before(("delete-replaced", "vllm"), ("create-replacement", "vllm"))


def test_an_explicit_delete_before_replace_false_creates_the_container_first():
    # source_eval.go: the goal's option is set when deleteBeforeReplaceDefined, and then wins.
    engine, settings = engine_for(containers)
    settings["dbr"] = False
    engine.up({})
    settings["envs"] = ["A=2"]
    run = engine.up({})
    assert run.before(("create-replacement", "vllm"), ("delete-replaced", "vllm"))


def test_a_replace_forced_only_by_the_trigger_creates_first_unless_the_option_is_set():
    # step_generator.go generateStepsFromDiff: a fired trigger skips the provider's Diff
    # (DiffResult{Changes: DiffSome}), and with it the provider's DeleteBeforeReplace.
    engine, settings = engine_for(containers)
    settings["trigger"] = "group-1"
    engine.up({})
    settings["trigger"] = "group-2"
    assert engine.up({}).before(("create-replacement", "vllm"), ("delete-replaced", "vllm"))
    settings.update(trigger="group-3", dbr=True)
    assert engine.up({}).before(("delete-replaced", "vllm"), ("create-replacement", "vllm"))


@pytest.mark.parametrize("change", [{"restart": "always"}, {"grace": 60}])
def test_restart_and_grace_period_change_a_container_in_place(change):
    # resource_docker_container.go: restart and destroy_grace_seconds are not ForceNew.
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(change)
    assert engine.up({}).steps == [("update", "vllm")]


def test_a_secret_alone_changes_no_container():
    # tfbridge/provider.go Diff: the bridge compares the values; the secret marking goes.
    engine, settings = engine_for(containers)
    engine.up({})
    settings["envs"] = lambda: pulumi.Output.secret(["A=1"])
    assert engine.up({}).steps == []


def test_image_name_replaces_keep_locally_updates():
    # resource_docker_image (remote image): name is ForceNew, keep_locally is not.
    engine, settings = engine_for(containers)
    engine.up({})
    settings["keep"] = False
    assert engine.up({}).steps == [("update", "image")]
    settings["image"] = "vllm:2"
    # A new image id replaces the container too.
    assert sorted(engine.up({}).replaced) == ["image", "vllm"]


def test_replacement_trigger_fires_on_change_but_never_from_or_to_unset_nor_for_secrecy():
    # step_generator.go shouldTriggerReplace: secrets removed, then an unset side never fires.
    engine, settings = engine_for(containers)
    engine.up({})
    settings["trigger"] = "group-1"
    assert engine.up({}).steps == []
    settings["trigger"] = lambda: pulumi.Output.secret("group-1")
    assert engine.up({}).steps == []
    settings["trigger"] = "group-2"
    assert engine.up({}).replaced == ["vllm"]
    settings["trigger"] = None
    assert engine.up({}).steps == []


def unknown() -> pulumi.Output:
    loop = asyncio.get_event_loop()
    value, known = loop.create_future(), loop.create_future()
    value.set_result(None)
    known.set_result(False)
    return pulumi.Output(set(), value, known)


def test_an_unknown_trigger_replaces_at_preview_even_from_unset_and_fails_an_up():
    # step_generator.go shouldTriggerReplace: an unknown fires before the unset check; during
    # an update it is the error "replacement trigger contains unknowns".
    def declare(settings):
        first = command.local.Command("first", create=settings.get("create", "true"))
        after = first.stdout if settings.get("from_first") else unknown() if settings.get("unknown") else None
        command.local.Command("second", create="true", opts=pulumi.ResourceOptions(replacement_trigger=after))

    engine, settings = engine_for(declare, Host())
    engine.up({})
    settings.update(create="false", from_first=True)
    preview = engine.preview({})
    assert set(preview.replaced) == {"second"} and preview.updated == ["first"]
    settings.update(create="true", from_first=False, unknown=True)
    run = engine.up({})
    assert isinstance(run.error, UnknownTrigger) and "contains unknowns" in str(run.error)


def test_a_changed_provider_configuration_updates_the_provider_only():
    # tfbridge configDiffer.DiffConfig replaces only on ForcesProviderReplace (docker sets none);
    # providers/registry.go Update keeps the reference, so resources see no new provider.
    engine, settings = engine_for(containers)
    engine.up({})
    settings["host"] = "ssh://deploy@192.0.2.1"
    assert engine.up({}).steps == [("update", "node")]


def test_a_container_is_deleted_through_its_provider_s_configuration_now():
    # providers/registry.go Update re-registers the same reference with the new host; the
    # container's delete (resource_docker_container_funcs.go) goes there, and ContainerStop and
    # ContainerRemove take "no such container" as done: the old one keeps running.
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(host="ssh://root@192.0.2.2", envs=["A=2"])
    run = engine.up({})
    assert run.stopped == [("vllm", 0, "ssh://root@192.0.2.2")]
    assert [(s.name, s.host) for s in engine.orphans] == [("vllm", "ssh://root@192.0.2.1")]


def test_a_deleted_container_gets_the_grace_saved_with_it():
    # resource_docker_container_funcs.go Delete reads destroy_grace_seconds from the state being
    # deleted: a grace changed in the same run comes too late; one changed before is used.
    engine, settings = engine_for(containers)
    engine.up({})
    settings.update(grace=60, envs=["A=2"])
    assert engine.up({}).stopped == [("vllm", 0, "ssh://root@192.0.2.1")]
    settings["grace"] = 120
    assert engine.up({}).steps == [("update", "vllm")]
    settings["envs"] = ["A=3"]
    assert engine.up({}).stopped == [("vllm", 120, "ssh://root@192.0.2.1")]


def test_a_container_that_did_not_start_is_saved_and_the_next_up_does_not_start_it():
    # resource_docker_container_funcs.go Create sets the id, then fails on upload or start; the
    # bridge saves it with init errors; continueStepsFromDiff makes the next up an update "to
    # continue awaiting initialization", and Update starts a container only on must_run
    # false -> true.
    engine, settings = engine_for(containers)
    engine.failing_starts["vllm"] = "error response from daemon: device busy"
    failed = engine.up({})
    assert isinstance(failed.error, ContainerFailed) and failed.failed == ["vllm"]
    assert (engine.saved("vllm").running, engine.saved("vllm").init_errors) == (
        False,
        ["error response from daemon: device busy"],
    )
    del engine.failing_starts["vllm"]
    retry = engine.up({})
    assert retry.error is None and retry.steps == [("update", "vllm")]
    assert not engine.saved("vllm").running
    assert engine.up({}).steps == []


def test_a_create_first_replacement_created_but_not_started_still_condemns_the_old_one():
    # step.go CreateStep.Apply: a partial failure (the create returned a state, with init errors)
    # marks the old resource for deletion all the same; it goes at the end of a run that succeeds.
    engine, settings = engine_for(containers)
    settings["dbr"] = False
    engine.up({})
    settings["envs"] = ["A=2"]
    engine.failing_starts["vllm"] = "error response from daemon: device busy"
    assert engine.up({}).failed == ["vllm"] and [s.name for s in engine.pending_delete] == ["vllm"]
    del engine.failing_starts["vllm"]
    assert sorted(engine.up({}).steps) == [("delete-replaced", "vllm"), ("update", "vllm")]


@pytest.mark.parametrize("replace_on", [["#initerror"], ["*"]])
def test_replace_on_changes_naming_the_init_errors_replaces_a_container_that_did_not_start(replace_on):
    # step_generator.go applyReplaceOnChanges: with init errors, a replace_on_changes path that
    # contains initErrorSpecialKey ("#initerror"; "*" contains every path) forces a replace.
    engine, settings = engine_for(containers)
    settings.update(replace_on=replace_on, dbr=True)
    engine.failing_starts["vllm"] = "error response from daemon: device busy"
    engine.up({})
    del engine.failing_starts["vllm"]
    retry = engine.up({})
    assert retry.before(("delete-replaced", "vllm"), ("create-replacement", "vllm"))
    assert engine.saved("vllm").running and engine.saved("vllm").init_errors == []
    assert engine.up({}).steps == []


# --- the engine: parallel chains, dependents, failures ---------------------------------------


def two_servers(settings: dict) -> None:
    first = docker.Container("a", name="a", image="img", envs=settings.get("envs", ["A=1"]))
    after = pulumi.ResourceOptions(depends_on=[first] if settings.get("chained") else None)
    docker.Container("b", name="b", image="img", envs=settings.get("envs", ["A=1"]), opts=after)


@pytest.mark.parametrize("chained", [False, True])
def test_chains_run_in_parallel_ordered_only_by_dependencies(chained):
    # deployment_executor.go handleSingleEvent: one ExecuteSerial chain per registration, chains
    # on parallel workers; the SDK (runtime/resource.py prepare_resource) registers a resource
    # only once its dependencies' RegisterResource returned, which the engine answers only once
    # their chain ended. So two independent delete-first replacements are out together.
    engine, settings = engine_for(two_servers)
    settings["chained"] = chained
    engine.up({})
    settings["envs"] = ["A=2"]
    run = engine.up({})
    assert run.before(("create-replacement", "a"), ("delete-replaced", "b")) is chained
    assert not run.before(("create-replacement", "b"), ("delete-replaced", "a"))
    assert most_out(run, {"a": "a", "b": "b"}) == (1 if chained else 2)


def with_dependents(settings: dict) -> None:
    server = docker.Container("server", name="server", image="img", envs=settings.get("envs", ["A=1"]))
    command.local.Command("member", create="add", delete="drain", triggers=[server.id])
    command.local.Command("logs", create="tail", delete="stop-tail", environment={"ID": server.id})
    command.local.Command("after", create="true", delete="gone", opts=pulumi.ResourceOptions(depends_on=[server]))


def test_a_delete_first_replace_deletes_first_the_dependents_its_inputs_would_replace():
    # step_generator.go calculateDependentReplacements: dependents whose input properties come
    # from the replaced resource, diffed with those inputs unknown, are deleted first in its
    # chain (reverse dependency order); `depends_on` alone, or an input that only updates, is
    # left. Those deleted are created again when they register (the `recreating` case).
    host = Host()
    engine, settings = engine_for(with_dependents, host)
    engine.up({})
    settings["envs"] = ["A=2"]
    run = engine.up({})
    assert run.before(("delete-replaced", "member"), ("delete-replaced", "server"))
    assert run.before(("create-replacement", "server"), ("create-replacement", "member"))
    assert run.updated == ["logs"] and "after" not in {name for _, name in run.steps}
    scripts = [script for _, script in host.scripts[-3:]]
    assert scripts[0] == "drain" and sorted(scripts[1:]) == ["add", "tail"]


def commands(settings: dict) -> None:
    first = command.local.Command("first", create="first")
    after = pulumi.ResourceOptions(depends_on=[first])
    command.local.Command("failing", create=settings.get("failing", "ok"), opts=after)
    command.local.Command("sibling", create=settings.get("sibling", "ok"), opts=after)
    command.local.Command(settings.get("last", "old"), create="last", delete="last-gone")


def test_the_first_failed_step_cancels_the_run():
    # step_executor.go executeChain: cancelDueToError; chains under way finish, no new chain
    # starts (a registration after it gets an error); deployment_executor.go never reaches
    # performPostSteps, so nothing is deleted.
    host = Host()
    engine, settings = engine_for(commands, host)
    engine.up({})
    settings.update(failing="fails", sibling="ok, again", last="new")
    host.failing_scripts.add("fails")
    run = engine.up({})
    assert run.failed == ["failing"] and isinstance(run.error, CommandFailed)
    # Ready together with the failing step, so under way when it failed: it finishes.
    assert ("update", "sibling") in run.steps
    assert "last-gone" not in [script for _, script in host.scripts]
    host.failing_scripts.clear()
    retry = engine.up({})
    assert retry.updated == ["failing"] and ("delete", "old") in retry.steps
    assert host.scripts[-1] == ("old", "last-gone")


# --- renames ---------------------------------------------------------------------------------


def renamed(settings: dict) -> None:
    aliases = [pulumi.Alias(name=settings["old"])] if settings.get("old") else None
    command.local.Command(settings.get("name", "a"), create="true", opts=pulumi.ResourceOptions(aliases=aliases))


def test_a_renamed_resource_is_a_new_one_created_before_the_old_is_deleted():
    # step_generator.go: a new URN is a create; the old URN, unseen, is deleted by GenerateDeletes.
    engine, settings = engine_for(renamed, Host())
    engine.up({})
    settings["name"] = "b"
    run = engine.up({})
    assert sorted(run.steps) == [("create", "b"), ("delete", "a")]
    assert run.before(("create", "b"), ("delete", "a"))


def test_an_alias_carries_the_old_state_to_the_new_name():
    # step_generator.go generateSteps: the old state is looked up by URN, then by each alias.
    engine, settings = engine_for(renamed, Host())
    engine.up({})
    settings.update(name="b", old="a")
    assert engine.up({}).steps == []
    assert [(urn.rsplit("::", 1)[1], saved.name) for urn, saved in engine.state.items()] == [("b", "b")]


def test_children_named_after_a_renamed_component_inherit_its_alias():
    # step_generator.go generateAliases / inheritedChildAlias.
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
    # step_generator.go / SDK: outputs of a resource being created are unknown at preview, and
    # `apply` on an unknown does not run.
    engine, _ = engine_for(chain)
    preview = engine.preview({})
    assert sorted(preview.steps) == [("create", "first"), ("create", "second")] and preview.ran == []
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
        assert run.before(("delete-replaced", container), ("create-replacement", container))


def test_a_changed_observability_setting_replaces_prometheus_old_one_first():
    local = stack_settings("local")
    engine = EngineDouble(stack="local")
    engine.up(local)
    changed = copy.deepcopy(local)
    changed["observability"]["prometheus"]["scrapeIntervalSeconds"] = 2
    run = engine.up(changed)
    assert run.before(("delete-replaced", "sim-0-prometheus"), ("create-replacement", "sim-0-prometheus"))
    assert not [name for _, name in run.steps if name.endswith("-vllm")]
