"""`simpul-fleet`: broker, serve, ingest and token commands."""

import argparse
import gc
import logging
import sys
import threading
from typing import Any, List, Optional, Tuple

from fleet_api.errors import FleetError
from simpul_wire.topics import fleet_name, valid_device_id
from simpul_wire.version import installed_version

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_INGEST_ID = fleet_name("ingest_1")

log = logging.getLogger("simpul.cli")


class CliError(FleetError):
    """A one-line reason to exit non-zero."""


def _engine(url: str):  # type: ignore[no-untyped-def]
    from fleet_api.db import make_engine, migrate

    try:
        engine = make_engine(url)
        migrate(engine)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # driver errors differ per engine; say it in one line
        raise CliError(f"cannot open the database {url.split('@')[-1]}: "
                       f"{str(exc).splitlines()[0]}") from exc
    return engine


def _settings(args: argparse.Namespace, **extra: Any):  # type: ignore[no-untyped-def]
    from fleet_api.settings import Settings

    return Settings(db_url=args.db, mqtt_url=args.mqtt, broker_data=args.broker_data,
                    mqtt_password_file=getattr(args, "mqtt_password_file", None), **extra)


def _ingest(engine, settings, client_id: str):  # type: ignore[no-untyped-def]
    from fleet_api.ingest.consumer import Ingest

    host, port, user = settings.broker_endpoint()
    return Ingest(engine, host, port, user, settings.broker_password(), client_id=client_id)


# fleet_api.metrics by process: the ingest's own counters, and what only the API's
# process keeps (by name, so a collector another version lacks is simply skipped).
INGEST_METRICS = ("MESSAGES_INGESTED", "RECORDS_STORED", "PAYLOADS_REJECTED",
                  "INGEST_DB_ERRORS")
API_METRICS = ("HTTP_LATENCY", "DEVICES_ONLINE", "FLEET", "REFRESH_ERRORS")


def _drop_metrics(registry: Any, names: Tuple[str, ...]) -> None:
    """Leave out of this process's /metrics what it cannot count: the ingest's counters
    where no ingest runs (`serve --no-ingest`: a 0 there would read as "nothing
    stored"), the API's where only the ingest runs."""
    from fleet_api import metrics

    for name in names:
        collector = getattr(metrics, name, None)
        if collector is None:
            continue
        try:
            registry.unregister(collector)
        except KeyError:  # not registered, or already left out (twice in one process)
            pass


def cmd_broker(args: argparse.Namespace) -> int:
    from fleet_api.broker.process import BrokerSetupError, exec_broker
    from fleet_api.devices.pki import PkiError

    try:
        bridge = (args.bridge, args.bridge_name) if args.bridge else None
        if bridge and not args.bridge_name:
            raise CliError("--bridge needs --bridge-name (the district's name, e.g. kota-barat)")
        exec_broker(args.data, args.port, args.fleet_port, args.bind, args.profile,
                    bridge, args.tls_port, args.tls_name)
    except (BrokerSetupError, PkiError, OSError) as exc:
        raise CliError(str(exc)) from exc
    return 0  # pragma: no cover - exec does not return


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from prometheus_client import REGISTRY

    from fleet_api.broker.accounts import AccountSync, BrokerAccounts
    from fleet_api.deps import Services
    from fleet_api.main import create_app
    from fleet_api.settings import SettingsError

    if args.no_ingest and args.ingest_client_id is not None:
        raise CliError("--ingest-client-id names serve's own ingest consumer, and "
                       "--no-ingest runs none: give it to `simpul-fleet ingest --client-id`")
    client_id = args.ingest_client_id or DEFAULT_INGEST_ID
    settings = _settings(args, heartbeat_timeout_s=args.heartbeat_timeout,
                         device_broker_url=args.device_broker_url,
                         device_tls_url=args.device_tls_url, updates_dir=args.updates_dir,
                         ingest=not args.no_ingest, ingest_client_id=client_id)
    engine = _engine(args.db)
    from fleet_api import sealing

    sealing.use(settings.sealing_key_path())
    accounts = None
    if args.broker_data:
        from fleet_api.broker.access import load_access

        accounts = AccountSync(BrokerAccounts(args.broker_data), lambda: load_access(engine))
        accounts.request()  # the broker may have restarted with an old password file
    from fleet_api.broker.publisher import Publisher
    from fleet_api.worker import Worker

    ingest = None
    publisher = None
    try:
        if args.mqtt or args.broker_data:
            if not args.no_ingest:
                ingest = _ingest(engine, settings, client_id)
            host, port, user = settings.broker_endpoint()
            publisher = Publisher(host, port, user, settings.broker_password())
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    if ingest is not None:
        threading.Thread(target=ingest.run, name="ingest", daemon=True).start()
    elif args.no_ingest:
        # Presence comes from the ingest workers' heartbeats in the database
        # (fleet_api/ingest/presence.py), so it stays true across processes: `unknown`
        # while no `simpul-fleet ingest` worker is connected and beating.
        _drop_metrics(REGISTRY, INGEST_METRICS)
        log.info("serving without an ingest consumer (--no-ingest): telemetry, births "
                 "and acks are the `simpul-fleet ingest` workers'; presence shows "
                 "unknown while none is connected")
    services = Services(engine=engine, settings=settings, accounts=accounts,
                        publisher=publisher)
    from fleet_api.devices.revoke import retry_pending

    side = services.broker_side()
    worker = Worker(engine, publisher, heartbeat_timeout_s=args.heartbeat_timeout,
                    alert_interval_s=args.alert_interval, accounts=accounts,
                    clock_alert_after_s=args.clock_alert_after,
                    deregistrations=lambda: retry_pending(engine, side)).start()
    app = create_app(services)
    # What is loaded by now lives as long as the process: frozen out of the collector's
    # sight, a full collection no longer walks it in the middle of a request (the
    # device-list p95 on PostgreSQL, docs/benchmarks/fleet.md).
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    finally:
        worker.stop()
        if ingest is not None:
            ingest.stop()
        if publisher is not None:
            publisher.close()
        if accounts is not None:
            accounts.stop()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import signal

    from fleet_api.settings import SettingsError

    settings = _settings(args)
    engine = _engine(args.db)
    try:
        ingest = _ingest(engine, settings, args.client_id)
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    if args.metrics_port is not None:
        from prometheus_client import REGISTRY, start_http_server

        _drop_metrics(REGISTRY, API_METRICS)
        start_http_server(args.metrics_port, addr=args.metrics_host)
    signal.signal(signal.SIGTERM, lambda *_: ingest.stop())
    ingest.run()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from fleet_api.auth import create_token

    engine = _engine(args.db)
    try:
        print(create_token(engine, args.role, args.name))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from fleet_api.backup import BackupError, backup

    try:
        manifest = backup(args.db, args.broker_data, args.out)
    except (BackupError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"backup written to {args.out}: {manifest['database']} database and "
          f"{len(manifest['members']) - 1} broker file(s)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from fleet_api.backup import BackupError, restore

    try:
        manifest = restore(args.archive, args.db, args.broker_data, args.force)
    except (BackupError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"restored the backup of {manifest['created_at']}: start the broker, then the "
          "fleet")
    return 0


def _fleet_client_id(value: str) -> str:
    """The fleet's client ids take a form no device id can, so no box takes its session."""
    if valid_device_id(value) or not 1 <= len(value) <= 100 or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"{value!r}: a fleet client id must contain a character no device id can "
            "have, such as '_' (e.g. simpul_ingest_2)")
    return value


def version() -> str:
    """The installed distribution's version; the source tree's when not installed."""
    from fleet_api import __version__

    return installed_version(__version__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simpul-fleet", description="Simpul fleet service")
    parser.add_argument("--version", action="version", version=f"simpul-fleet {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("broker", help="run Mosquitto with broker_config/")
    p.add_argument("--port", type=int, required=True, help="device listener port")
    p.add_argument("--fleet-port", type=int, default=None,
                   help="loopback listener for the fleet's services (default: port + 1)")
    p.add_argument("--data", required=True, help="broker data directory")
    p.add_argument("--bind", default="0.0.0.0", help="device listener address")
    p.add_argument("--profile", choices=["default", "city"], default="default",
                   help="city: broker_config/mosquitto.city.conf.in, tuned for 10,000+ "
                        "connections, and a raised open-file limit")
    p.add_argument("--bridge", default=None, metavar="HOST:PORT",
                   help="district side: bridge to the city broker's device listener, with "
                        "the password of POST /api/v1/bridges in DIR/bridge.password")
    p.add_argument("--bridge-name", default=None,
                   help="the name the bridge was created with at the city, e.g. kota-barat")
    p.add_argument("--tls-port", type=int, default=None,
                   help="also a TLS listener where devices log in with a certificate from "
                        "the fleet's CA (created in DIR/tls on first use)")
    p.add_argument("--tls-name", action="append", default=[], metavar="NAME",
                   help="a host name or address boxes use to reach the broker, for its "
                        "certificate (repeatable; localhost and 127.0.0.1 are always in)")
    p.set_defaults(func=cmd_broker)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", required=True, help="sqlite:///path or postgresql://...")
        p.add_argument("--mqtt", default=None, help="mqtt://[user@]host:port (no password)")
        p.add_argument("--broker-data", default=None,
                       help="data dir of `simpul-fleet broker`: account and URL from there")
        p.add_argument("--mqtt-password-file", default=None)

    p = sub.add_parser("serve", help="API, dashboard, background worker and (unless "
                       "--no-ingest) an ingest consumer")
    common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--device-broker-url", default=None,
                   help="broker URL handed to registered devices")
    p.add_argument("--updates-dir", default=None,
                   help="serve signed agent bundles from here at /updates/ "
                        "(`simpul-fleet update publish --dir`)")
    p.add_argument("--device-tls-url", default=None,
                   help="the broker's TLS listener as boxes reach it, mqtts://host:port, "
                        "handed out with certificates (default: from the broker data dir)")
    p.add_argument("--heartbeat-timeout", type=float, default=120.0,
                   help="seconds of silence after which an online device shows offline")
    p.add_argument("--no-ingest", action="store_true",
                   help="no ingest consumer in this process: API, dashboard and worker "
                        "only, beside one or more `simpul-fleet ingest` workers (how a "
                        "real deployment runs, docs/scaling.md)")
    p.add_argument("--ingest-client-id", default=None, type=_fleet_client_id,
                   help="the in-process ingest consumer's fixed client id (it must "
                        f"contain '_'; default {DEFAULT_INGEST_ID})")
    p.add_argument("--alert-interval", type=float, default=5.0,
                   help="seconds between alert evaluations")
    p.add_argument("--clock-alert-after", type=float, default=3600.0,
                   help="alert when a box has reported an unsynced clock this many seconds")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ingest", help="one more ingest worker on the shared subscription")
    common(p)
    p.add_argument("--client-id", default=fleet_name("ingest_2"), type=_fleet_client_id,
                   help="fixed client id: its persistent session survives restarts; it "
                        "must contain '_', which no device id can")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve this worker's Prometheus counters on this port (the API's "
                        "/metrics counts only its own process's ingest)")
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION")
    tsub.required = True
    t = tsub.add_parser("create", help="print a new API token")
    t.add_argument("--role", required=True, choices=["admin", "operator", "technician", "viewer"])
    t.add_argument("--db", required=True)
    t.add_argument("--name", default="")
    t.set_defaults(func=cmd_token)

    p = sub.add_parser("backup", help="database, broker data and CA key in one archive, online")
    p.add_argument("--db", required=True, help="sqlite:///path or postgresql://...")
    p.add_argument("--broker-data", default=None, help="the broker's data dir")
    p.add_argument("--out", required=True, help="archive to write (.tar.gz, mode 0600)")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", help="a backup into a stopped fleet and broker")
    p.add_argument("archive", help="a .tar.gz from `simpul-fleet backup`")
    p.add_argument("--db", required=True, help="sqlite:///path or postgresql://... (the "
                   "PostgreSQL database must exist)")
    p.add_argument("--broker-data", default=None, help="the broker's data dir to restore to")
    p.add_argument("--force", action="store_true",
                   help="replace an existing database file, devices or broker data dir")
    p.set_defaults(func=cmd_restore)

    from fleet_api.updates import bundles as updates

    updates.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"simpul-fleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
