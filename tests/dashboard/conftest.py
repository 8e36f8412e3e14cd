"""A running fleet with simulated boxes, and headless Debian Chromium through Playwright."""

from pathlib import Path
from typing import Iterator

import pytest

from testbed.harness import Fleet, Process, telemetry, tool, wait_until

CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium keeps trying the network this machine does not have.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def sim_fleet(scratch: Path, fleet: Fleet) -> Iterator[Process]:
    sim = Process([tool("simpul-sim"), "fleet", "--fleet", fleet.url, "--token", fleet.token,
                   "--devices", "3", "--interval", "1", "--prefix", "ui",
                   "--data-dir", str(scratch / "boxes")], scratch / "sim.log").start()

    def all_online() -> bool:
        with fleet.api() as api:
            data = api.get("/api/v1/devices").json()["data"]
        return len(data) == 3 and all(d["online"] for d in data)

    wait_until(all_online, 60, what="3 simulated boxes online")
    for n in (1, 2, 3):
        wait_until(lambda n=n: telemetry(fleet, f"ui-000{n}", stream="health"), 30,
                   what="health from every box")
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()
