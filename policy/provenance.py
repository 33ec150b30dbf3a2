"""Provenance: what the deployment trusts, pinned (image builds, SSH host keys)."""

from __future__ import annotations

import json

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from checks.steps import NODE_SSH_ENV
from core.config import image_reference_problem
from props import CONTAINER, LOCAL_COMMAND, REMOTE_COMMANDS, REMOTE_IMAGE, container_view, is_unknown, node_name, plain


def validate_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    if not isinstance(props, dict):
        return
    if args.resource_type == REMOTE_IMAGE:
        ref, node = props.get("name"), node_name(args.name, {}, "-image")
    elif args.resource_type == CONTAINER:
        ref, node = props.get("image"), container_view(args.urn, args.name, props).node
        # Normally the RemoteImage's id; a plain reference here bypasses the RemoteImage.
        if isinstance(ref, str) and ref.startswith("sha256:"):
            return
    else:
        return
    if not isinstance(ref, str) or is_unknown(ref):
        return
    problem = image_reference_problem(ref)
    if problem:
        report_violation(f"node {node}: image {problem}; set image.tag or image.ref in the stack config", None)


IMAGE_PINNED = ResourceValidationPolicy(
    name="vllm-image-pinned",
    description="Images are pinned to a version tag or a sha256 digest, never untagged or 'latest'.",
    validate=validate_image_pinned,
    enforcement_level=EnforcementLevel.MANDATORY,
)


def validate_host_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == LOCAL_COMMAND:
        _validate_step_host_keys(args, report_violation)
        return
    if args.resource_type not in REMOTE_COMMANDS:
        return
    props = plain(args.props)
    connection = props.get("connection") if isinstance(props, dict) else None
    if not isinstance(connection, dict):
        return
    hops = [("connection", connection)]
    if isinstance(connection.get("proxy"), dict):
        hops.append(("connection.proxy", connection["proxy"]))
    for where, conn in hops:
        host_key = conn.get("hostKey")
        if is_unknown(host_key) or is_unknown(conn.get("host")):
            continue
        if not (isinstance(host_key, str) and host_key.strip()):
            host = conn.get("host") if isinstance(conn.get("host"), str) else "?"
            report_violation(
                f"node {host} ({args.name}): {where}.hostKey is not set, so the command trusts any "
                f"machine answering at {host}; pin it with {where}.hostKey (the output of "
                f"`ssh-keyscan -t ed25519 {host}`, without the host name)",
                None,
            )


def _validate_step_host_keys(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The program's steps reach their nodes with the deploying machine's ssh (`python -m checks`)."""
    props = plain(args.props)
    environment = props.get("environment") if isinstance(props, dict) else None
    text = environment.get(NODE_SSH_ENV) if isinstance(environment, dict) else None
    if not isinstance(text, str) or is_unknown(text):
        return
    try:
        connections = json.loads(text)
    except ValueError:
        return
    for node, conn in sorted(connections.items() if isinstance(connections, dict) else []):
        if not isinstance(conn, dict) or (isinstance(conn.get("hostKey"), str) and conn["hostKey"].strip()):
            continue
        host = conn.get("host") if isinstance(conn.get("host"), str) else "?"
        report_violation(
            f"node {node} ({args.name}): its hostKey is not set, so the step trusts any machine answering at "
            f"{host}; pin it with nodes[i].hostKey (the output of `ssh-keyscan -t ed25519 {host}`, without "
            "the host name)",
            None,
        )


HOST_KEY_PINNED = ResourceValidationPolicy(
    name="remote-command-host-key-pinned",
    description="Remote commands and the program's steps pin the SSH host key of the machine they connect to.",
    validate=validate_host_key,
    enforcement_level=EnforcementLevel.ADVISORY,
)
