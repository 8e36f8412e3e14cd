"""Dashboard: the fleet overview of --points points in headless Chromium (Debian's
/usr/bin/chromium through Playwright), from navigation to `body[data-loaded='1']` (the
table, counts and map drawn from /api/v1/devices). Points are registered in bulk, spread
over the districts, half with a tier. Goal: under 1 s for 1,000 points.

    PYTHONPATH=. python bench/bench_dashboard.py [--points 1000] [--runs 7] [--quick]
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import List, Tuple

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.fleet import device_specs, register_all
from testbed.harness import scratch
from testbed.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


API_TIME_JS = """() => performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/api/v1/devices')).map(e => e.duration)"""


def measure(url: str, token: str, runs: int) -> Tuple[List[float], List[float]]:
    """Seconds from navigation to loaded, and the page's own /api/v1/devices fetch."""
    from playwright.sync_api import sync_playwright

    out, api = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/login?token={token}")  # the kiosk sign-in sets the cookie
        page.wait_for_selector("body[data-loaded='1']", timeout=60000)
        for _ in range(runs):
            t0 = time.perf_counter()
            page.goto(f"{url}/")
            page.wait_for_selector("body[data-loaded='1']", timeout=60000)
            out.append(time.perf_counter() - t0)
            api += [d / 1000 for d in page.evaluate(API_TIME_JS)]
        rows = page.locator("#points tbody tr").count()
        browser.close()
    if rows < 1:
        raise RuntimeError("the overview drew no rows")
    return out, api


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 runs")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs
    base = scratch("simpul-bench-ui-")
    stack = Stack(base, f"sqlite:///{base}/fleet.db")
    try:
        stack.start_broker()
        stack.start_serve(1)
        with httpx.Client(base_url=stack.url(), timeout=120,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            regs = register_all(api, device_specs("pt", args.points, random.Random(5)))
            for reg in regs[: len(regs) // 2: max(1, len(regs) // 50)]:
                api.put(f"/api/v1/devices/{reg.device_id}/tier", json={"mbps": 300})
        times, api_times = measure(stack.url(), stack.token, runs)
    finally:
        stack.stop()
    med, worst = statistics.median(times), max(times)
    print(f"### Dashboard overview ({args.points} points, {runs} loads, load "
          f"{os.getloadavg()[0]:.2f})\n")
    print(f"`PYTHONPATH=. python bench/bench_dashboard.py --points {args.points} --runs {runs}`"
          "\n")
    print("| measure | seconds |\n|---|---|")
    print(f"| navigation to body[data-loaded='1'], median | {med:.3f} |")
    print(f"| slowest | {worst:.3f} |")
    if api_times:
        print(f"| of which the page's GET /api/v1/devices (median) | "
              f"{statistics.median(api_times):.3f} |")
    print(f"\nGoal under 1 s: {'met' if med < 1 else 'NOT met'} (median).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
