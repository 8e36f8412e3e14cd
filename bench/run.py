"""`python -m bench.run` (`make bench`): run every bench/bench_*.py, collect the markdown
each prints, and write docs/benchmarks.md with the machine's details, the command that
made each figure, and the per-area write-ups in docs/benchmarks/*.md.

    python -m bench.run [--quick] [--only city,command] [--skip clients] [--no-run]

--quick passes --quick to each benchmark that takes it (small, for CI); --no-run only
rebuilds the page from docs/benchmarks/*.md.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = REPO / "docs" / "benchmarks.md"
SECTIONS = REPO / "docs" / "benchmarks"


def _first_line(cmd: List[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "not found"


def _postgres() -> str:
    try:
        import psycopg

        dsn = os.environ.get("SIMPUL_PG", "postgresql://postgres@127.0.0.1:5432") + "/postgres"
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0]} (server)" if row else "unknown"
    except Exception:  # no server here: say so, the page is still written
        return _first_line(["psql", "--version"]) + " (client only)"


def machine() -> Dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, IndexError):
        pass
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": mem,
        "kernel": platform.release(),
        "OS": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "Python": platform.python_version(),
        "Mosquitto": _first_line(["mosquitto", "-h"]),
        "PostgreSQL": _postgres(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def benches(only: Optional[List[str]], skip: List[str]) -> List[Path]:
    found = sorted(BENCH.glob("bench_*.py"))
    names = {p: p.stem[len("bench_"):] for p in found}
    return [p for p in found if (not only or names[p] in only) and names[p] not in skip]


def takes_quick(path: Path) -> bool:
    return "--quick" in path.read_text()


def run_one(path: Path, quick: bool, timeout: float) -> Tuple[str, str, int, float]:
    args = [sys.executable, str(path.relative_to(REPO))]
    if quick and takes_quick(path):
        args.append("--quick")
    command = "PYTHONPATH=. " + " ".join(["python", *args[1:]])
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    try:
        out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=timeout)
        text, rc = out.stdout, out.returncode
        if rc != 0:
            text += f"\n\n(exit {rc}; last lines of stderr:)\n\n    " + "\n    ".join(
                out.stderr.strip().splitlines()[-8:])
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (
            exc.stdout or "")
        text += f"\n\n(timed out after {timeout:g} s)"
        rc = -1
    return command, text, rc, time.monotonic() - started


def render(info: Dict[str, str], results: List[Tuple[str, str, str, int, float]],
           quick: bool) -> str:
    lines = ["# Benchmarks", "",
             "Written by `python -m bench.run`" + (" --quick" if quick else "")
             + " (`make bench`).",
             "Each figure is a median over the runs its script states; ratios are against "
             "a reference tool measured in the same run. The machine is shared with other "
             "work: the load average at the start is given, and each section says what it saw.",
             "", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    if results:
        lines += ["", "## This run", ""]
        for name, command, text, rc, seconds in results:
            status = "" if rc == 0 else f" (exit {rc})"
            lines += [f"### {name}{status}", "", f"    {command}", "",
                      f"({seconds:.0f} s)", "", text.strip(), ""]
    sections = sorted(SECTIONS.glob("*.md"))
    if sections:
        lines += ["", "## Per-area write-ups (docs/benchmarks/)", ""]
        for path in sections:
            body = path.read_text().strip()
            body = re.sub(r"^(#{1,5}) ", lambda m: "#" + m.group(1) + " ", body,
                          flags=re.MULTILINE)  # nest their headings under this page's
            lines += [f"<!-- from docs/benchmarks/{path.name} -->", body, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small runs (CI)")
    ap.add_argument("--only", default="", help="comma-separated names, e.g. city,command")
    ap.add_argument("--skip", default="", help="comma-separated names to leave out")
    ap.add_argument("--no-run", action="store_true", help="only rebuild the page")
    ap.add_argument("--timeout", type=float, default=3 * 3600.0, help="per benchmark")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    info = machine()
    results = []
    if not args.no_run:
        only = [n for n in args.only.split(",") if n] or None
        for path in benches(only, [n for n in args.skip.split(",") if n]):
            print(f"bench: {path.name} ...", file=sys.stderr, flush=True)
            command, text, rc, seconds = run_one(path, args.quick, args.timeout)
            print(f"bench: {path.name} exit {rc} in {seconds:.0f} s", file=sys.stderr)
            results.append((path.stem, command, text, rc, seconds))
    Path(args.out).write_text(render(info, results, args.quick))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r[3] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
