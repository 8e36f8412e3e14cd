"""`simpul-agent sensor read`: the technician's look at a live serial sensor.

    simpul-agent sensor read --driver pms5003 --port /dev/ttyUSB0 --count 3
    simpul-agent sensor read --driver modbus --port /dev/ttyUSB1 --map water.toml --json

Prints one line per reading (with `--json`, one object per line:
{"driver", "ts", "values"}). With no readings in time it says what to check and
exits 1; it never shows a traceback.
"""

import argparse
import json
import queue
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List

from agent.errors import AgentError

DRIVERS = ["pms5003", "sds011", "modbus", "bridge"]
MODES = {"pms5003": ["active", "passive"], "sds011": ["active", "query"]}
# simpul_wire.config.sensors.PmsModel, spelled out so `--help` loads no pydantic
# (tests/sensors/test_sensor_cli.py holds the two equal).
PMS_MODELS = ["pms5003", "pms7003", "pms5003t", "pms5003st", "pms3003"]


class SensorReadError(AgentError):
    """No readings, or a port that cannot be opened; the message says what to check."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sensor", help="read serial sensors by hand")
    sub = parser.add_subparsers(dest="sensor_command", metavar="ACTION")
    sub.required = True
    read = sub.add_parser("read", help="print live readings from a serial sensor")
    read.add_argument("--driver", required=True, choices=DRIVERS)
    read.add_argument("--port", required=True, help="device path or pyserial URL")
    read.add_argument("--count", type=int, default=1, help="readings to print (default 1)")
    read.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    read.add_argument("--json", action="store_true", help="one JSON object per reading")
    read.add_argument("--mode", help="pms5003: active|passive; sds011: active|query")
    read.add_argument("--model", choices=PMS_MODELS,
                      help="pms5003: which Plantower model (default pms5003; the T, ST "
                           "and 3003 carry other words in their frames)")
    read.add_argument("--interval", type=float, default=1.0,
                      help="seconds between requests in passive/query/modbus mode")
    read.add_argument("--map", dest="map_file", help="modbus: TOML register map")
    read.add_argument("--baud", type=int, default=9600, help="modbus: baud rate")
    read.set_defaults(func=run_read)


def _emit(args: argparse.Namespace, values: Dict[str, float], units: Dict[str, str]) -> None:
    ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if args.json:
        print(json.dumps({"driver": args.driver, "ts": ts, "values": values}), flush=True)
    else:
        parts = [f"{k}={v:g}{(' ' + units[k]) if units.get(k) else ''}"
                 for k, v in values.items()]
        print(f"{ts} {args.driver}: " + ", ".join(parts), flush=True)


def _check(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise SensorReadError("--count must be 1 or more")
    if args.timeout <= 0:
        raise SensorReadError("--timeout must be positive")
    if args.mode is not None and args.mode not in MODES.get(args.driver, []):
        allowed = ", ".join(MODES.get(args.driver, [])) or "no --mode"
        raise SensorReadError(f"--mode {args.mode}: {args.driver} takes {allowed}")
    if args.model is not None and args.driver != "pms5003":
        raise SensorReadError(f"--model {args.model}: only the pms5003 driver has models")
    if args.driver == "modbus" and not args.map_file:
        raise SensorReadError("modbus needs --map FILE, a TOML register map "
                              "(docs/firmware-bridge.md shows one)")


def _probe(port: str, baud: int) -> None:
    """Open and close the port once, so a wrong path fails at once with advice."""
    from agent.sensors.port import check_port

    try:
        check_port(port, baud)
    except AgentError as exc:
        raise SensorReadError(str(exc)) from exc


def _read_serial(args: argparse.Namespace) -> int:
    from agent.collectors import serial_sensors as ss
    from agent.sensors.catalogue import DRIVER_UNITS
    from agent.sensors.port import PortReader
    from simpul_wire.config import sensors as schema

    model = {"pms5003": schema.Pms5003Config, "sds011": schema.Sds011Config,
             "bridge": schema.BridgeConfig}[args.driver]
    fields: Dict[str, Any] = {"type": args.driver, "name": args.driver, "port": args.port,
                              "poll_interval_s": max(args.interval, 0.1)}
    if args.mode:
        fields["mode"] = args.mode
    if args.model:
        fields["model"] = args.model
    try:
        config = model(**fields)
    except ValueError as exc:  # pydantic's ValidationError: e.g. a passive PMS3003
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise SensorReadError(f"--driver {args.driver}: {first}") from exc
    driver = ss.make_driver(config)
    _probe(args.port, driver.baud)
    readings: queue.Queue[Dict[str, float]] = queue.Queue()
    reader = PortReader(args.port, driver, on_reading=readings.put)
    reader.start()
    got, deadline = 0, time.monotonic() + args.timeout
    try:
        while got < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                values = readings.get(timeout=left)
            except queue.Empty:
                break
            units = dict(DRIVER_UNITS.get(args.driver, {}))
            units.update(driver.units())
            _emit(args, values, units)
            doubt = driver.implausible(values)
            if doubt:  # the collector would mark the source stale with this reason
                print(f"simpul-agent: warning: {doubt}", file=sys.stderr, flush=True)
            got += 1
    finally:
        reader.close()
    if got >= args.count:
        return 0
    with reader.lock:
        reason = reader.state.reason
    if got == 0:
        text = ss.no_data_reason(args.port, args.timeout, driver, driver.counters)
        raise SensorReadError(f"{text} (port: {reason})" if reason else text)
    raise SensorReadError(f"only {got} of {args.count} readings in {args.timeout:g} s")


def _read_modbus(args: argparse.Namespace) -> int:
    from agent.collectors.modbus import ModbusPoller, register_map
    from simpul_wire.config.sensors import ModbusConfig

    config = ModbusConfig(type="modbus", name="modbus", port=args.port, baud=args.baud,
                          map_file=args.map_file, poll_interval_s=max(args.interval, 0.1))
    regmap = register_map(config)
    _probe(args.port, args.baud)
    poller = ModbusPoller(config, regmap)
    client = poller._client()
    if not client.connect():
        raise SensorReadError(f"cannot open {args.port}")
    got, deadline = 0, time.monotonic() + args.timeout
    problem = None
    try:
        while got < args.count and time.monotonic() < deadline:
            started = time.monotonic()
            problem = poller.poll_once(client)
            if problem is None and poller.last_problem is None and poller.values is not None:
                _emit(args, dict(poller.values), regmap.units())
                got += 1
                if got >= args.count:
                    break
            time.sleep(max(0.0, min(args.interval - (time.monotonic() - started),
                                    deadline - time.monotonic())))
    finally:
        client.close()
    if got >= args.count:
        return 0
    problem = problem or poller.last_problem
    if got == 0:
        raise SensorReadError(
            f"no readings from {args.port} in {args.timeout:g} s: {problem or 'no answer'}; "
            f"check A/B wiring, baud {args.baud}, parity and the slave address in the map")
    raise SensorReadError(f"only {got} of {args.count} readings in {args.timeout:g} s")


def run_read(args: argparse.Namespace) -> int:
    _check(args)
    try:
        if args.driver == "modbus":
            return _read_modbus(args)
        return _read_serial(args)
    except AgentError:
        raise
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        raise SensorReadError(f"{args.driver} on {args.port}: {exc}") from exc


__all__: List[str] = ["register", "run_read"]
