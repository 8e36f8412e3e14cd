"""The command-centre dashboard in a real browser against a running simulated fleet."""


import pytest

from testbed.harness import ROOT, Fleet, Process

pytestmark = pytest.mark.slow
SHOTS = ROOT / "docs" / "screenshots"


def sign_in(page, fleet: Fleet, lang: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{fleet.url}/login?token={fleet.token}")
    if lang:
        page.goto(f"{fleet.url}/?lang={lang}")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)


def test_sign_in_and_see_the_fleet(page, fleet: Fleet, sim_fleet: Process) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, fleet)
    assert page.url.rstrip("/") == fleet.url
    rows = page.locator("#points tbody tr")
    assert rows.count() == 3
    assert page.locator("#map circle").count() == 3
    assert page.locator("#n-online").inner_text() == "3"
    assert "Daring" in page.content()  # Indonesian by default
    ids = sorted(page.locator("#points tbody tr td:first-child").all_inner_texts())
    assert ids == ["ui-0001", "ui-0002", "ui-0003"]
    # Sorting by a header reverses on the second click.
    page.click("th[data-key='device_id']")
    first = page.locator("#points tbody tr td:first-child").first.inner_text()
    assert first == "ui-0003"
    # Filtering by district narrows the table to that district's points.
    district = page.locator("#points tbody tr td:nth-child(3)").first.inner_text()
    page.select_option("#f-district", district)
    shown = page.locator("#points tbody tr td:nth-child(3)").all_inner_texts()
    assert shown and set(shown) == {district}
    page.select_option("#f-district", "")
    page.screenshot(path=str(SHOTS / "overview.png"))
    # English on request, and the token never shows in the page.
    page.goto(f"{fleet.url}/?lang=en")
    page.wait_for_selector("body[data-loaded='1']")
    assert "Online" in page.content() and fleet.token not in page.content()


def test_point_page_charts_hold_data(page, fleet: Fleet, sim_fleet: Process) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, fleet)
    page.click("text=ui-0001")
    page.wait_for_url("**/devices/ui-0001")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)
    for chart in ("c-clients", "c-air", "c-noise", "c-water"):
        points = int(page.get_attribute(f"#{chart}", "data-points") or 0)
        assert points > 0, chart
    assert page.locator("#c-clients canvas").count() == 1
    assert "sim" in page.locator("#sources").inner_text()
    assert "KiB" in page.locator("#backlog").inner_text()
    page.screenshot(path=str(SHOTS / "point.png"), full_page=True)


def test_page_weight_is_under_300_kb(page, fleet: Fleet, sim_fleet: Process) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, fleet)
    for path in ("/", "/devices/ui-0001"):
        sizes: list = []

        def count(response, sizes=sizes) -> None:  # type: ignore[no-untyped-def]
            sizes.append(len(response.body()) if response.ok else 0)

        page.on("response", count)
        page.goto(f"{fleet.url}{path}")
        page.wait_for_selector("body[data-loaded='1']", timeout=20000)
        page.remove_listener("response", count)
        assert 0 < sum(sizes) < 300 * 1024, (path, sum(sizes))


def test_change_a_tier_and_watch_the_box_apply_it(page, fleet: Fleet, sim_fleet: Process) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, fleet)
    page.goto(f"{fleet.url}/devices/ui-0002")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)
    page.select_option("#tier-choice", "300")
    page.once("dialog", lambda dialog: dialog.accept())  # "change this point's tier to 300?"
    page.click("#tier-change")
    page.wait_for_selector("#tier-status.ok", timeout=60000)
    assert "300" in page.locator("#tier-status").inner_text()
    assert page.locator("#tier-applied").inner_text() == "300"
    assert page.locator("#tier-req").inner_text() == "300"
    with fleet.api() as api:
        device = api.get("/api/v1/devices/ui-0002").json()
    assert device["tier_mbps"] == 300 and device["tier_applied_mbps"] == 300
    page.screenshot(path=str(SHOTS / "tier-applied.png"))


def test_an_alert_from_a_simulated_fault_appears_live(page, fleet: Fleet,  # type: ignore[no-untyped-def]
                                                     sim_fleet: Process) -> None:
    with fleet.api() as api:
        # This group calls a point down after 3 s of silence.
        assert api.put("/api/v1/groups/cepat", json={
            "thresholds": {"offline_min": 0.05}}).status_code == 200
        assert api.put("/api/v1/devices/ui-0003/group",
                       json={"group": "cepat"}).status_code == 200
    sign_in(page, fleet)
    page.goto(f"{fleet.url}/alerts")
    page.wait_for_selector("body[data-loaded='1']")
    page.wait_for_selector("#live.on", timeout=10000)
    assert page.locator("#alerts tbody tr").count() == 0
    page.evaluate("window.__same_page = true")
    sim_fleet.stop()  # the fault: the simulated boxes go down
    page.wait_for_selector("#alerts tbody tr", timeout=60000)
    assert page.evaluate("window.__same_page") is True  # no reload happened
    row = page.locator("#alerts tbody tr").first.inner_text()
    assert "ui-0003" in row
    page.screenshot(path=str(SHOTS / "alerts.png"))
    page.click("button[data-ack]")
    page.wait_for_selector("#alerts tbody tr:has-text('✓')", timeout=10000)


def test_tiers_page_ranks_points_by_use(page, fleet: Fleet, sim_fleet: Process) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, fleet)
    page.goto(f"{fleet.url}/tiers")
    page.wait_for_selector("body[data-loaded='1']")
    rows = page.locator("#report tbody tr")
    assert rows.count() == 3
    assert sorted(page.locator("#report tbody tr td:first-child").all_inner_texts()) == [
        "ui-0001", "ui-0002", "ui-0003"]
