"""The image against its host over several `pulumi up`s, on the stateful engine double
(tests/engine_double.py): a driver too old for the image's CANN stops every container, the next
`up` after the driver upgrade passes, and an image pulled anew under the same tag whose CANN moved
is judged anew, before any container is replaced, while the old group keeps serving."""

from __future__ import annotations

from unittest import mock

from engine_double import EngineDouble
from fakehosts import image_host_output
from hoststubs import fixture
from mocked import image_id, stack_settings
from test_scenarios import CONTAINERS, GATE, Site, names, running

IMAGE_HOST = "a2-1-check-image-host"


def on_a2(inspect: str, version: str, toolkit: str | None = None) -> str:
    """What node a2-1 answers for the image check: the image's inspect output and its driver."""
    return image_host_output(
        fixture(f"image/{inspect}"),
        fixture(f"driver_files/{version}"),
        fixture("board/a2_chip0.txt"),
        fixture(f"image/{toolkit}") if toolkit else None,
    )


def test_a_driver_too_old_for_the_image_fails_and_starts_no_container():
    config = stack_settings("a2")
    site = Site(config)
    site.hosts.overrides[IMAGE_HOST] = on_a2("v0.18.0_a2.json", "version_old.txt")
    failed = EngineDouble(stack="a2", runner=site).up(config)
    assert failed.failed == [IMAGE_HOST]
    assert failed.error.stderr.strip() == (
        "node a2-1: check image-host: expected an image built for atlas-800-a2 whose CANN the node's driver "
        "supports, saw driver 23.0.7, below 25.5 which CANN 8.5.1 of m.daocloud.io/quay.io/ascend/vllm-ascend:v0.18.0 "
        "needs; upgrade the node's driver and firmware (HDK) to 25.5 or newer, or use an image with an older CANN, "
        "then run `pulumi up` again (a failed check is not saved, so it runs again)"
    )
    assert GATE not in names(failed) and not names(failed) & set(CONTAINERS)


def test_after_the_driver_upgrade_the_next_up_passes():
    config = stack_settings("a2")
    site = Site(config)
    site.hosts.overrides[IMAGE_HOST] = on_a2("v0.18.0_a2.json", "version_old.txt")
    engine = EngineDouble(stack="a2", runner=site)
    failed = engine.up(config)
    assert failed.failed == [IMAGE_HOST]
    del site.hosts.overrides[IMAGE_HOST]
    site.scripts.clear()
    retry = engine.up(config)
    assert retry.error is None
    # The failed check runs again and reads the upgraded driver; the passed ones stay passed.
    passed = {n for n in failed.created if "-check-" in n} - {IMAGE_HOST}
    retried = {n for n in site.contacted() if "-check-" in n}
    assert IMAGE_HOST in retried and passed and not retried & passed
    assert {GATE, *CONTAINERS} <= set(retry.created)
    labels = {item["label"]: item["value"] for item in engine.saved("a2-1-vllm").inputs["labels"]}
    assert (labels["deepseek-r1-ascend.cann"], labels["deepseek-r1-ascend.soc"]) == ("8.5.1", "ascend910b1")


def test_an_image_pulled_anew_whose_cann_moved_is_checked_before_any_container_is_replaced():
    # Deployed with an image on CANN 8.3.RC2 (no tested pairing: a warning) and driver 25.0.RC1.
    config = stack_settings("a2")
    site = Site(config)
    site.hosts.overrides[IMAGE_HOST] = on_a2("v0.11.0_a2.json", "version_rc.txt", "toolkit_8.3.rc2.txt")
    engine = EngineDouble(stack="a2", runner=site)
    assert engine.up(config).error is None
    before = engine.saved("a2-1-vllm").inputs["image"]
    # The registry moved the tag to a build on CANN 9.0.0; `pulumi up --replace` on the images
    # pulls it anew. Same tag, same config: only the image's ID tells the check it changed.
    site.hosts.overrides[IMAGE_HOST] = on_a2("v0.18.0_a2_cann9.json", "version_rc.txt")
    site.scripts.clear()
    with mock.patch("engine_double.image_id", lambda name: image_id(name + "@moved")):
        moved = engine.up(config, replace=("a2-0-image", "a2-1-image"))
    assert moved.failed == [IMAGE_HOST]
    assert "saw driver 25.0.rc1.1, below 25.5 which CANN 9.0.0" in moved.error.stderr
    # Only the checks reading the images ran again (a2-0's too, unless the failure came first).
    assert IMAGE_HOST in site.contacted() and set(site.contacted()) <= {"a2-0-check-image-host", IMAGE_HOST}
    # No container was replaced: the old group still serves, on the old image.
    assert not set(moved.replaced) & set(CONTAINERS) and running(engine) == dict.fromkeys(CONTAINERS, True)
    assert engine.saved("a2-1-vllm").inputs["image"] == before
