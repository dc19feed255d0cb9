"""The console at 1,000 actions in one run, in headless Chromium: the run page loads, the
DAG is drawn with every action, and a node changes colour live. The run is driven by a
separate `sagactl run` process on the server's store (the server follows it by polling),
as a worker would drive it. How long the page took is printed, never asserted."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import available, screenshot, start_browser
from servetools import SAGACTL, Server
from test_console_browser import SUCCEEDED, node_fill, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ACTIONS = 1000
LAYER = 100
LAST = f"a{ACTIONS - 1:03d}"


def wide_saga(path: Path) -> Path:
    """Ten layers of a hundred cheap actions, each needing one of the layer before."""
    lines = ["apiVersion: sagactl/v1", "kind: Saga", "metadata:", "  name: wide", "actions:"]
    for i in range(ACTIONS):
        lines += [f"  a{i:03d}:", "    uses: build.resolve_cluster_ip"]
        if i >= LAYER:
            lines.append(f"    needs: [a{i - LAYER:03d}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def fills(driver: Any) -> dict[str, str]:
    """Each drawn action's fill colour."""
    return driver.execute_script(  # type: ignore[no-any-return]
        """
        const fills = {};
        for (const g of document.querySelectorAll('#graph g.node')) {
          const shape = g.querySelector('polygon, path, ellipse');
          fills[g.querySelector('title').textContent] = shape.getAttribute('fill');
        }
        return fills;
        """
    )


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


def test_a_run_of_a_thousand_actions(
    make_server: Callable[..., Server], driver: Any, tmp_path: Path
) -> None:
    server = make_server().start()
    env = {**server.env, "SAGACTL_FAULTS": f"{LAST}:delay=30"}
    with subprocess.Popen(
        [SAGACTL, "run", "-q", "--run-id", "wide-run", str(wide_saga(tmp_path / "wide.yaml"))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as runner:
        try:
            until(
                lambda: httpx.get(f"{server.url}/api/runs/wide-run").status_code == 200,
                timeout=120,
                what="the run created",
            )
            began = time.perf_counter()
            driver.get(f"{server.url}/runs/wide-run")
            nodes = until(
                lambda: driver.execute_script(
                    "return document.querySelectorAll('#graph g.node').length;"
                ),
                what="the DAG drawn",
            )
            loaded = time.perf_counter() - began
            assert nodes == ACTIONS
            driver.execute_script("window.notReloaded = true;")
            first = fills(driver)
            changed = until(
                lambda: [a for a, fill in fills(driver).items() if fill != first[a]],
                timeout=300,
                what="a node coloured anew",
            )
            screenshot(driver, "run-page-1000-running")
            until(lambda: node_fill(driver, LAST) == SUCCEEDED, timeout=300, what=f"{LAST} done")
            coloured = time.perf_counter() - began
            assert driver.execute_script("return window.notReloaded === true;")
            until(lambda: driver.find_element("id", "run-state").text == "succeeded")
            assert set(fills(driver).values()) == {SUCCEEDED}
            assert changed and all(first[a] != SUCCEEDED for a in changed)
            screenshot(driver, "run-page-1000-succeeded")
        finally:
            runner.wait(300)
        assert runner.returncode == 0, runner.stderr.read() if runner.stderr else ""
    page_bytes = len(httpx.get(f"{server.url}/runs/wide-run", timeout=60).content)
    print(
        f"\n1,000 actions: page and DAG in {loaded:.1f}s ({page_bytes / 1e6:.1f} MB),"
        f" last node coloured live {coloured:.1f}s after the page was asked for"
    )
