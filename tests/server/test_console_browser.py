"""The console in headless Chromium: the runs page, a node changing colour live, the
timeline's parallel bars, the cancel button, skip reasons, the retry button. Screenshots
go to test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from browser import available, screenshot, start_browser
from cliruns import plugin_env, skipping_run, stuck_run
from servetools import EXAMPLES, Server
from tars import tar_of_dir

pytestmark = pytest.mark.slow
SITE = tar_of_dir(EXAMPLES / "static-site")
RUNNING = "#cfe2ff"
SUCCEEDED = "#d1e7dd"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    why = available()
    if why:
        pytest.skip(why)
    browser = start_browser()
    try:
        yield browser
    finally:
        browser.quit()


def upload(server: Server, app: str, *, wait: bool = False) -> str:
    answer = httpx.post(
        f"{server.url}/api/apps/{app}/builds", params={"wait": int(wait)}, content=SITE, timeout=60
    )
    assert answer.status_code in (200, 202), answer.text
    return str(answer.json()["run_id"])


def until(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


def node_fill(driver: Any, action: str) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        """
        for (const g of document.querySelectorAll('#graph g.node')) {
          if (g.querySelector('title').textContent === arguments[0]) {
            return g.querySelector('polygon, path, ellipse').getAttribute('fill');
          }
        }
        return null;
        """,
        action,
    )


def test_runs_page_lists_a_finished_run(server: Server, driver: Any) -> None:
    run_id = upload(server, "listed", wait=True)
    driver.get(server.url + "/")
    row = until(lambda: driver.find_elements("css selector", f'tr[data-run="{run_id}"]'))
    assert "succeeded" in row[0].text
    assert row[0].find_element("css selector", "a").get_attribute("href").endswith(run_id)
    screenshot(driver, "runs-page")


def test_a_running_node_changes_colour_without_reload(
    make_server: Callable[..., Server], driver: Any
) -> None:
    server = make_server().start(SAGACTL_FAULTS="build_image:delay=3")
    run_id = upload(server, "live")
    driver.get(f"{server.url}/runs/{run_id}")
    until(lambda: node_fill(driver, "build_image") == RUNNING, what="build_image drawn running")
    driver.execute_script("window.notReloaded = true;")
    screenshot(driver, "run-page-running")
    until(lambda: node_fill(driver, "build_image") == SUCCEEDED, what="build_image succeeded")
    assert driver.execute_script("return window.notReloaded === true;")
    until(lambda: driver.find_element("id", "run-state").text == "succeeded")
    assert node_fill(driver, "stop_old_sandboxes") == SUCCEEDED
    screenshot(driver, "run-page-succeeded")


def test_the_timeline_shows_parallel_actions_overlapping(
    make_server: Callable[..., Server], driver: Any
) -> None:
    """resolve_cluster_ip and get_next_version run side by side (both slowed to 1 s)."""
    server = make_server().start(
        SAGACTL_FAULTS="resolve_cluster_ip:delay=1,get_next_version:delay=1"
    )
    run_id = upload(server, "parallel", wait=True)
    driver.get(f"{server.url}/runs/{run_id}")

    def bar(action: str) -> Any:
        bars = driver.find_elements(
            "css selector", f'#timeline .row[data-action="{action}"] .bar.attempt'
        )
        return bars[0] if bars else None

    first = until(lambda: bar("resolve_cluster_ip"), what="the timeline")
    second = bar("get_next_version")
    a, b = first.rect, second.rect
    assert a["width"] > 20 and b["width"] > 20
    assert a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"], (a, b)
    assert a["y"] != b["y"]  # one row per action
    driver.execute_script("document.getElementById('timeline').scrollIntoView();")
    screenshot(driver, "run-page-timeline")


def test_the_cancel_button_works(make_server: Callable[..., Server], driver: Any) -> None:
    server = make_server().start(SAGACTL_FAULTS="build_image:delay=30")
    run_id = upload(server, "cancelled")
    driver.get(f"{server.url}/runs/{run_id}")
    until(lambda: node_fill(driver, "build_image") == RUNNING, what="build_image running")
    driver.find_element("css selector", 'button[data-verb="cancel"]').click()
    until(
        lambda: driver.find_element("id", "run-state").text in ("cancelled", "compensated"),
        what="the run compensated",
    )
    state = httpx.get(f"{server.url}/api/runs/{run_id}").json()["state"]
    assert state in ("cancelled", "compensated")
    assert node_fill(driver, "receive_tar") == "#e2d9f3"  # compensated
    screenshot(driver, "run-page-cancelled")


def reason_of(driver: Any, action: str) -> str:
    row = driver.find_element("css selector", f'#actions tr[data-action="{action}"]')
    return str(row.find_element("css selector", ".reason").text)


def test_skipped_actions_show_their_reasons(
    make_server: Callable[..., Server], driver: Any
) -> None:
    server = make_server()
    run_id = skipping_run(server, "skipper-1")
    server.start()
    driver.get(f"{server.url}/runs/{run_id}")
    until(lambda: driver.find_element("id", "run-state").text == "succeeded")
    assert reason_of(driver, "gated") == "condition is false: ${{ inputs.flag }}"
    assert reason_of(driver, "after") == "it uses outputs of 'gated', skipped"
    assert reason_of(driver, "plain") == ""
    screenshot(driver, "run-page-skipped")


def test_the_retry_button_continues_a_stuck_run(
    make_server: Callable[..., Server], driver: Any
) -> None:
    server = make_server(**plugin_env())
    run_id = stuck_run(server, "stuck-1")
    server.start()
    driver.get(f"{server.url}/runs/{run_id}")
    assert driver.find_element("id", "run-state").text == "stuck"
    button = driver.find_element("id", "retry")
    assert button.is_displayed()
    assert "c" in driver.find_element("id", "run-error").text
    button.click()
    until(
        lambda: driver.find_element("id", "run-state").text == "succeeded",
        what="the retried run succeeded",
    )
    assert not driver.find_element("id", "retry").is_displayed()
    assert node_fill(driver, "c") == SUCCEEDED
    assert httpx.get(f"{server.url}/api/runs/{run_id}").json()["state"] == "succeeded"
    screenshot(driver, "run-page-retried")


def test_the_retry_button_is_hidden_unless_stuck(server: Server, driver: Any) -> None:
    run_id = upload(server, "fine", wait=True)
    driver.get(f"{server.url}/runs/{run_id}")
    until(lambda: driver.find_element("id", "run-state").text == "succeeded")
    assert not driver.find_element("id", "retry").is_displayed()
