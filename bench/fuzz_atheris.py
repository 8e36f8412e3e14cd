"""Coverage-guided fuzzing (atheris / libFuzzer) of the parsers that face the outside.

Targets, the same as tests/faults/test_fuzz.py:
  wire    simpul_wire.decode for every model (the first byte picks the model): WireError only
  config  agent.config.parse_config on arbitrary text: ConfigError only
  ingest  fleet_api.ingest.consumer.Ingest.build on an arbitrary topic and payload: never raises,
          and refuses (counts) whatever it does not store

Any other exception, or an input running over --timeout seconds (a hang), is a finding:
libFuzzer stops and writes the input under --artifacts. Usage:

    python bench/fuzz_atheris.py                 # every target, --seconds each
    python bench/fuzz_atheris.py --seconds 60 --target wire

Each target runs in its own process (libFuzzer exits when it is done); the figures are
libFuzzer's own final line: runs, coverage edges, corpus, executions per second.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("wire", "config", "ingest")


def wire_target() -> Callable[[bytes], None]:
    from simpul_wire.models import MODEL_BY_LEAF, WireError, decode

    models = [MODEL_BY_LEAF[k] for k in sorted(MODEL_BY_LEAF)]

    def one(data: bytes) -> None:
        if not data:
            return
        try:
            decode(models[data[0] % len(models)], data[1:])
        except WireError:
            pass

    return one


def config_target() -> Callable[[bytes], None]:
    from simpul_wire.config import parse_config
    from simpul_wire.errors import ConfigError

    def one(data: bytes) -> None:
        try:
            parse_config(data.decode("utf-8", errors="replace"))
        except ConfigError:
            pass

    return one


def ingest_target() -> Callable[[bytes], None]:
    from fleet_api.db import make_engine, utcnow
    from fleet_api.ingest.consumer import Ingest, Message

    ingest = Ingest(make_engine("sqlite:///:memory:"), "127.0.0.1", 1, "u", "p")
    leaves = ["telemetry", "health", "state", "config/reported", "cmd/c1/result", "claim"]

    def one(data: bytes) -> None:
        if len(data) < 2:
            return
        if data[0] & 1:  # a well-formed topic, so the payload parsers are reached
            name = f"simpul/v1/box-01/{leaves[data[1] % len(leaves)]}"
        else:
            name = data[1:1 + data[1] % 64].decode("utf-8", errors="replace")
        batch = ingest.build([Message(name, data[2:], 1, 1, bool(data[0] & 2))], utcnow())
        if not batch.rows and not batch.rejected and not batch.seen and not batch.reported:
            # Only the leaves handled elsewhere, and a retained `online` (which proves
            # nothing about now), may leave no trace.
            assert name.endswith(("/result", "/claim", "/state")), name

    return one


FACTORIES: Dict[str, Callable[[], Callable[[bytes], None]]] = {
    "wire": wire_target, "config": config_target, "ingest": ingest_target}


def run_one(target: str, libfuzzer_args: List[str]) -> None:
    """In the child: instrument our packages, then fuzz one target until libFuzzer stops."""
    import logging

    import atheris

    logging.disable(logging.CRITICAL)  # one warning per refusal would be the bottleneck
    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["simpul_wire", "agent", "fleet_api"]):
        one = FACTORIES[target]()
    atheris.Setup([sys.argv[0], *libfuzzer_args], one)
    atheris.Fuzz()


def seeds(target: str, directory: Path) -> None:
    """A few valid inputs to start from, so the fuzzer begins past the JSON syntax."""
    directory.mkdir(parents=True, exist_ok=True)
    batch = (b'{"schema_version":1,"device_id":"box-01","ts":"2026-11-23T08:00:00Z",'
             b'"stream":"telemetry","epoch":"0123456789abcdef","records":[{"seq":0,'
             b'"ts":"2026-11-23T08:00:00Z","metrics":{"pm2_5":1.5},'
             b'"sources":{"pms":{"state":"ok"}}}]}')
    examples = {
        "wire": [bytes([i]) + batch for i in range(9)],
        "config": [b'[device]\ndevice_id = "box-01"\n[publish]\nsample_interval_s = 5\n'
                   b'[[collectors]]\ntype = "synthetic"\nname = "air"\n'
                   b'values = { pm2_5 = 12.5 }\n'],
        "ingest": [b"\x01\x00" + batch, b"\x01\x02" + b'{"schema_version":1,"device_id":'
                   b'"box-01","state":"online"}'],
    }
    for n, example in enumerate(examples[target]):
        (directory / f"seed-{n}").write_bytes(example)


def summarise(output: str) -> Dict[str, Any]:
    done = [line for line in output.splitlines() if re.search(r"#\d+\s+DONE", line)]
    last = done[-1] if done else ""
    fields = dict(re.findall(r"(cov|ft|corp|exec/s): (\d+)", last))
    runs = re.search(r"#(\d+)", last)
    return {"runs": int(runs.group(1)) if runs else 0, **{k: int(v) for k, v in fields.items()},
            "crash": "ERROR: libFuzzer" in output or "Uncaught Python exception" in output,
            "hang": "timeout after" in output.lower()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, action="append")
    parser.add_argument("--seconds", type=int, default=20, help="per target")
    parser.add_argument("--timeout", type=int, default=5, help="seconds per input = a hang")
    parser.add_argument("--artifacts", default=None, help="where findings are written")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        run_one(args.child, rest)
        return 0
    artifacts = Path(args.artifacts or tempfile.mkdtemp(prefix="simpul-fuzz-"))
    failed = False
    print(f"{'target':8} {'seconds':>7} {'runs':>9} {'exec/s':>7} {'cov':>6} {'corpus':>6}  "
          "finding")
    for target in args.target or TARGETS:
        corpus = artifacts / f"corpus-{target}"
        seeds(target, corpus)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", target, f"-max_total_time={args.seconds}",
             f"-timeout={args.timeout}", "-rss_limit_mb=2048", "-print_final_stats=1",
             f"-artifact_prefix={artifacts}/{target}-", str(corpus)],
            capture_output=True, text=True, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        elapsed = time.monotonic() - started
        out = proc.stdout + proc.stderr
        s = summarise(out)
        finding = "crash" if s["crash"] else "hang" if s["hang"] else (
            f"exit {proc.returncode}" if proc.returncode else "none")
        failed |= finding != "none"
        print(f"{target:8} {elapsed:7.0f} {s['runs']:9d} {s.get('exec/s', 0):7d} "
              f"{s.get('cov', 0):6d} {s.get('corp', 0):6d}  {finding}")
        if finding != "none":
            print("\n".join(out.splitlines()[-40:]))
    print(f"artifacts and corpora: {artifacts}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
