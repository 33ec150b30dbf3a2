"""The node's pulled image against the node (`image-host`): the image's CANN version and the
hardware family it was built for, read from the image itself, judged against the node's driver
and chip by the pairing table (`compat`).

The tag does not fix the CANN version (later builds of one release moved to another CANN), so it
is read from the image: `docker image inspect` shows `ASCEND_TOOLKIT_HOME=.../cann-8.5.1` and
`SOC_VERSION=ascend910b1` (A2) or `ascend910_9391` (A3) in its environment. Where the toolkit path
holds no version (`.../ascend-toolkit/latest` on CANN 8.3 bases), a throwaway container, with no
network and no device, prints the toolkit's `ascend_toolkit_install.info` (`version=8.3.RC2`).
The node's driver and chip are read again in the same step, so a driver upgraded since an earlier
`pulumi up` is judged as it is now.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import board, compat, driver_files
from .common import CheckResult, as_text, quote, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "image-host"

TOOLKIT_INFO = "/usr/local/Ascend/ascend-toolkit/latest/*-linux/ascend_toolkit_install.info"
_MARKS = ("=== image", "=== toolkit", "=== version.info", "=== chip 0", "=== end")
_CANN_IN_PATH = re.compile(r"/cann-(\d[A-Za-z0-9.]*)")


@dataclass(frozen=True)
class ImageFacts:
    cann: str | None
    soc: str | None  # SOC_VERSION, as the image spells it


@dataclass(frozen=True)
class ImageHost:
    image: ImageFacts
    driver: str | None
    chip: str | None  # the node's SoC (see board.chip_soc)


def image_host_command(image: str, version_file: str) -> str:
    """The image's inspect output, its toolkit's install info when the toolkit path in its
    environment names no version (the same test as `_CANN_IN_PATH`), the driver's version.info and
    NPU 0's chip, each after its marker, then an end marker."""
    img = quote(image)
    env = f"docker image inspect --format '{{{{range .Config.Env}}}}{{{{println .}}}}{{{{end}}}}' {img} 2>/dev/null"
    toolkit = f"docker run --rm --network none --entrypoint /bin/sh {img} -c {quote('cat ' + TOOLKIT_INFO)} 2>&1"
    return (
        f"echo '=== image'; docker image inspect {img} 2>&1; "
        f"if ! {env} | grep -q '^ASCEND_TOOLKIT_HOME=.*/cann-[0-9]'; then echo '=== toolkit'; {toolkit}; fi; "
        f"{driver_files.driver_files_command([], version_file)}; "
        "echo '=== chip 0'; npu-smi info -t board -i 0 -c 0 2>&1; echo '=== end'"
    )


def _sections(text: str) -> dict[str, str] | None:
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.strip() in _MARKS:
            current = found.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    if "=== end" not in found or "=== image" not in found:
        return None
    return {k: "\n".join(v) for k, v in found.items()}


def parse_image_env(inspect_output: str) -> dict[str, str] | None:
    """The environment in `docker image inspect`'s JSON, or None when it is not that JSON."""
    try:
        (image,) = json.loads(inspect_output)
        env = image["Config"]["Env"] or []
    except (ValueError, TypeError, KeyError):
        return None
    return dict(e.split("=", 1) for e in env if isinstance(e, str) and "=" in e)


def toolkit_version(info: str) -> str | None:
    """`version=` of ascend_toolkit_install.info."""
    for line in as_text(info).splitlines():
        key, _, value = line.strip().partition("=")
        if key == "version" and value.strip():
            return value.strip()
    return None


def parse_image_host(output: str) -> ImageHost | None:
    """None unless the output runs to its end marker and holds the image's inspect JSON."""
    sections = _sections(as_text(output))
    env = parse_image_env(sections["=== image"]) if sections else None
    if env is None:
        return None
    path = _CANN_IN_PATH.search(env.get("ASCEND_TOOLKIT_HOME", ""))
    cann = path.group(1) if path else toolkit_version(sections.get("=== toolkit", ""))
    driver = driver_files.parse_driver_files("=== version.info\n" + sections.get("=== version.info", ""))
    chip = board.chip_soc(board.fields(sections.get("=== chip 0", "")))
    return ImageHost(ImageFacts(cann, env.get("SOC_VERSION")), driver.version if driver else None, chip)


def judge_image_host(node: str, output: str, image: str, profile: str, table: compat.Table) -> CheckResult:
    """Refuses an image built for another family than `profile` or the node's chip, and a driver
    below what the image's CANN needs; warns on a driver newer than any tested pairing and on what
    it cannot judge. `detail` holds the image's facts, the warnings and the way forward (`fix`)."""
    expected = f"an image built for {profile} whose CANN the node's driver supports"
    parsed = parse_image_host(output)
    if parsed is None:
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    facts, driver, warnings = parsed.image, parsed.driver, []
    report = {"cann": facts.cann or "unknown", "soc": facts.soc or "unknown", "driver": driver, "warnings": warnings}
    problems: list[tuple[str, str]] = []
    family_row = table.for_soc(facts.soc) if facts.soc else None
    chip_row = table.for_soc(parsed.chip) if parsed.chip else None
    if family_row is None:
        warnings.append(f"node {node}: image {image} has SOC_VERSION {facts.soc or 'unset'}, not in the pairing table, "
                        "so the hardware it was built for is not checked")  # fmt: skip
    elif family_row.family != profile:
        problems.append((
            f"{image} built for {family_row.family} (SOC_VERSION={facts.soc})",
            f"use vllm-ascend's {profile} build of the image (its A3 builds are tagged `<version>-a3`)",
        ))  # fmt: skip
    elif chip_row is not None and chip_row.family != family_row.family:
        problems.append((
            f"{image} built for {family_row.family} (SOC_VERSION={facts.soc}) on the node's {parsed.chip} ({chip_row.family})",
            f"use the image built for {chip_row.family}, or check `profile`",
        ))  # fmt: skip
    row = table.for_cann(facts.cann) if facts.cann else None
    if facts.cann is None:
        warnings.append(f"node {node}: no CANN version found in image {image}, so the driver is not checked against it")
    elif row is None:
        warnings.append(
            f"node {node}: no tested driver pairing for CANN {facts.cann} (image {image}), so driver {driver} is "
            f"not checked against it; add one with {compat.OVERRIDE_KEY}"
        )
    elif driver is None or compat.version_key(driver) is None:
        warnings.append(
            f"node {node}: cannot read the driver version ({driver}), so it is not checked against CANN {facts.cann}"
        )
    elif not compat.at_least(driver, row.driver_min):
        problems.append((
            f"driver {driver}, below {row.driver_min} which CANN {facts.cann} of {image} needs{compat.overridden(row.source)}",
            f"upgrade the node's driver and firmware (HDK) to {row.driver_min} or newer, or use an image with an older CANN",
        ))  # fmt: skip
    elif not compat.at_most(driver, row.driver_newest):
        warnings.append(
            f"node {node}: driver {driver} is newer than any tested with CANN {facts.cann} (up to {row.driver_newest}"
            f"{compat.overridden(row.source) or ', checks/compatibility.toml'}); it is likely fine, and "
            f"{compat.OVERRIDE_KEY} can record that it is"
        )
    if family_row is not None:
        report["family"] = family_row.family
    if problems:
        seen = "; ".join(s for s, _ in problems)
        return CheckResult(node, CHECK, False, expected, seen, report | {"fix": "; ".join(f for _, f in problems)})
    seen = f"CANN {report['cann']}, built for {report.get('family', 'unknown')} ({report['soc']}), driver {driver}"
    return CheckResult(node, CHECK, True, expected, seen, report)
