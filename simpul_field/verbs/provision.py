"""`simpul-field provision`: register a box and write its identity to the card.

    simpul-field provision --device-id halte-01 --site "Halte Pasar Baru" --kind wifi \\
        --district "Kota Barat" --lat -6.2 --lon 106.8 --target /media/me/rootfs/etc/simpul
    simpul-field provision batch --count 20 --kind wifi --out bundles/      (office)
    simpul-field provision install bundles/box-x.bundle.json --target DIR \\
        --site "Halte Pasar Baru" --lat -6.2 --lon 106.8                     (field, offline)
    simpul-field provision check halte-01 [--timeout 300]

The fleet comes from --fleet or SIMPUL_FLEET, the token from --token-file or
SIMPUL_TOKEN (never from the command line, where `ps` shows it). Exit codes are in
simpul_field/provision/errors.py (2 also when a package of the field extra is
missing). docs/provisioning.md walks a technician through it.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from simpul_field.extras import require
from simpul_field.provision.bundle import (
    Bundle,
    Site,
    bundle_files,
    check_target,
    parse_bundle,
    render_config,
    write_bundle,
    write_bundle_file,
)
from simpul_field.provision.errors import (
    FleetError,
    InputError,
    ProvisionError,
    TargetError,
)

KINDS = ("wifi", "cctv", "sensor")
DEFAULT_BOX_DIR = "/etc/simpul"
DEFAULT_DATA_DIR = "/var/lib/simpul"
BATCH_CHUNK = 1000


def _common(p: argparse.ArgumentParser, fleet: bool = True) -> None:
    if fleet:
        p.add_argument("--fleet", default=os.environ.get("SIMPUL_FLEET"),
                       help="fleet API URL (default: $SIMPUL_FLEET)")
        p.add_argument("--token-file", help="file holding a technician token "
                                            "(default: $SIMPUL_TOKEN)")


def _card(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="directory that becomes the bundle on the mounted card, "
                                    "e.g. /media/$USER/rootfs/etc/simpul")
    p.add_argument("--box-dir", default=DEFAULT_BOX_DIR,
                   help=f"where that directory is on the box (default {DEFAULT_BOX_DIR})")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                   help=f"the agent's data directory on the box (default {DEFAULT_DATA_DIR})")
    p.add_argument("--ca", help="the broker's CA certificate (PEM) to put on the card")
    p.add_argument("--collectors", help="TOML with the managed sections ([[collectors]], "
                                        "[publish], ...) for the agent config")
    p.add_argument("--label", help="label file, .svg (with text) or .png (QR only); "
                                   "default ./<device_id>-label.svg")
    p.add_argument("--force", action="store_true",
                   help="replace a complete bundle already at --target")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds the final check waits for the box (default 300)")


def _site(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--site", required=required, help="site name, e.g. 'Halte Pasar Baru'")
    p.add_argument("--district", required=False, help="district")
    p.add_argument("--lat", type=float, required=required, help="latitude, -90..90")
    p.add_argument("--lon", type=float, required=required, help="longitude, -180..180")


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "provision", help="register a box and write its identity to the card",
        description="Register a box with the fleet, write its agent config and credentials "
        "to the card atomically, print its label and wait until it is online. "
        "Offline: `batch` in the office, `install` in the field, `check` afterwards.")
    _common(p)
    p.add_argument("--device-id", help="the box's id: 2-63 of a-z, 0-9, '-'")
    p.add_argument("--kind", choices=KINDS, help="wifi, cctv or sensor")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    _site(p, required=False)
    _card(p)
    p.add_argument("--no-check", action="store_true", help="do not wait for the box")
    p.add_argument("--tls", action="store_true",
                   help="log in with a certificate from the fleet's CA on the broker's TLS "
                        "listener (the production option); the key is made here and goes "
                        "only to the card")
    p.set_defaults(func=run_register)
    sub = p.add_subparsers(dest="action", metavar="ACTION")

    b = sub.add_parser("batch", help="office: pre-register N boxes and write N bundle files")
    _common(b)
    b.add_argument("--count", type=int, required=True, help="how many boxes")
    b.add_argument("--kind", choices=KINDS, required=True, help="wifi, cctv or sensor")
    b.add_argument("--out", required=True, help="directory for the bundle files and labels")
    b.add_argument("--district", help="district, when the batch is for one")
    b.add_argument("--prefix", default="box", help="device id prefix (default box)")
    b.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    b.set_defaults(func=run_batch)

    i = sub.add_parser("install", help="field, offline: write a bundle file to a card")
    i.add_argument("bundle", help="a .bundle.json from `provision batch`")
    _site(i, required=True)
    _card(i)
    _common(i)
    i.add_argument("--check", action="store_true",
                   help="after writing, wait until the box is online (needs the network)")
    i.set_defaults(func=run_install)

    c = sub.add_parser("check", help="wait until a box's first telemetry reaches the fleet")
    c.add_argument("device_id")
    _common(c)
    c.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    c.add_argument("--stream", choices=("any", "telemetry", "health"), default="any",
                   help="which records count (default any)")
    c.add_argument("--claim-code", help="also wait until this claim is recorded")
    c.set_defaults(func=run_check)


# -- inputs ---------------------------------------------------------------------------
def _require(args: argparse.Namespace, *modules: str) -> None:
    """Before anything is registered or written: every package this run will import."""
    extra = []
    if getattr(args, "collectors", None) and sys.version_info < (3, 11):
        extra.append("tomli")
    if getattr(args, "tls", False):
        extra.append("cryptography")
    require("provision", *modules, *extra)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _client(args: argparse.Namespace) -> Any:
    from simpul_field.provision.fleet import FleetClient  # httpx only when needed

    if not args.fleet:
        raise InputError("no fleet: give --fleet URL or set SIMPUL_FLEET")
    if args.token_file:
        token = _read(args.token_file, "the token file").decode(errors="replace").strip()
    else:
        token = os.environ.get("SIMPUL_TOKEN", "").strip()
    if not token:
        raise InputError("no token: set SIMPUL_TOKEN or give --token-file FILE")
    return FleetClient(args.fleet, token)


def _check_site(args: argparse.Namespace) -> Site:
    if args.lat is not None and not -90 <= args.lat <= 90:
        raise InputError(f"--lat {args.lat} is outside -90..90")
    if args.lon is not None and not -180 <= args.lon <= 180:
        raise InputError(f"--lon {args.lon} is outside -180..180")
    if args.site is not None and not args.site.strip():
        raise InputError("--site is empty")
    return Site(site=args.site, district=args.district, lat=args.lat, lon=args.lon)


def _managed(args: argparse.Namespace) -> Dict[str, Any]:
    """The --collectors TOML text, validated, and which stream the final check awaits."""
    if not args.collectors:
        return {"managed": "", "stream": "any"}
    from simpul_field.provision.agent_config import managed_sections

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10 laptops
        import tomli as tomllib

    text = _read(args.collectors, "the collectors file").decode(errors="replace")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{args.collectors}: not valid TOML: {exc}") from exc
    managed = managed_sections(table, args.collectors)
    # With a telemetry collector configured, wait for telemetry proper, else any record.
    streams = {getattr(c, "stream", "health" if c.type == "health" else "telemetry")
               for c in managed.collectors}
    return {"managed": text, "stream": "telemetry" if "telemetry" in streams else "any"}


def _card_inputs(args: argparse.Namespace) -> Dict[str, Any]:
    """Everything about the card checked before the fleet is asked for anything."""
    if not args.target:
        raise InputError("--target DIR is required: the directory that becomes the bundle")
    target = Path(args.target).absolute()
    check_target(target, args.force)
    ca = _read(args.ca, "the CA file") if args.ca else None
    if ca is not None and b"-----BEGIN CERTIFICATE-----" not in ca:
        raise InputError(f"{args.ca} is not a PEM certificate")
    return {"target": target, "ca": ca, **_managed(args)}


# -- steps ----------------------------------------------------------------------------
def _install(bundle: Bundle, args: argparse.Namespace, card: Dict[str, Any],
             claim: Optional[Site]) -> None:
    from simpul_field.provision.agent_config import check_agent_config

    text = render_config(bundle, args.box_dir, args.data_dir, card["ca"] is not None,
                         claim=claim, managed=card["managed"])
    check_agent_config(text)
    write_bundle(card["target"], bundle.device_id, bundle_files(bundle, text, card["ca"]),
                 force=args.force)
    print(f"wrote the bundle of {bundle.device_id} to {card['target']}")


def _with_certificate(client: Any, bundle: Bundle, card: Dict[str, Any]
                      ) -> Tuple[Bundle, Dict[str, Any]]:
    """A key made here, its certificate signed by the fleet's CA, and the CA itself on
    the card (unless --ca named one)."""
    from dataclasses import replace

    from simpul_field.provision.tls import new_key_and_csr

    key_pem, csr_pem = new_key_and_csr(bundle.device_id)
    issued = client.certificate(bundle.device_id, csr_pem)
    if not issued.get("url"):
        raise FleetError("the fleet's broker has no TLS listener (url is empty): ask the "
                         "office to start it with --tls-port, or provision without --tls")
    ca = card["ca"] if card["ca"] is not None else str(issued["ca"]).encode()
    bundle = replace(bundle, tls_url=issued["url"], certificate=issued["certificate"],
                     key=key_pem)
    return bundle, {**card, "ca": ca}


def _label(bundle: Bundle, site: Optional[str], args: argparse.Namespace) -> None:
    from simpul_field.provision.label import print_label, write_label

    path = Path(args.label or f"{bundle.device_id}-label.svg")
    write_label(path, bundle.device_id, site, bundle.claim_code)
    print_label(bundle.device_id, site, bundle.claim_code)
    print(f"label   {path}")


def _check(client: Any, device_id: str, timeout: float, stream: str = "any",
           claim_code: Optional[str] = None) -> int:
    from simpul_field.provision.check import wait_online

    wait_online(client, device_id, timeout, stream=stream, claim_code=claim_code)
    what = "telemetry" if stream == "telemetry" else "records"
    print(f"online: {device_id}: its first {what} reached the fleet")
    return 0


def run_register(args: argparse.Namespace) -> int:
    _require(args, "httpx", "segno")
    missing = [f"--{n.replace('_', '-')}" for n in ("device_id", "site", "kind", "district",
                                                      "lat", "lon")
               if getattr(args, n) is None]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (or use `provision batch`/`install`)")
    from simpul_wire.topics import valid_device_id

    if not valid_device_id(args.device_id):
        raise InputError(f"--device-id {args.device_id!r}: 2-63 of a-z, 0-9 and '-'")
    site = _check_site(args)
    card = _card_inputs(args)
    with _client(args) as client:
        body = {"device_id": args.device_id, "site": site.site, "kind": args.kind,
                "district": site.district, "lat": site.lat, "lon": site.lon,
                "tags": args.tag}
        registered = client.register(body)
        print(f"registered {args.device_id} with {client.url}")
        code: Optional[str] = None
        try:
            code = client.issue_claim(args.device_id)["claim_code"]
        except ProvisionError as exc:  # the box is registered: go on without a code
            print(f"simpul-field: warning: no claim code for the label: {exc}",
                  file=sys.stderr)
        mqtt = registered["mqtt"]
        bundle = Bundle(device_id=args.device_id, kind=args.kind, mqtt_url=mqtt["url"],
                        password=mqtt["password"], claim_code=code, fleet_url=client.url)
        try:
            if args.tls:
                bundle, card = _with_certificate(client, bundle, card)
            _install(bundle, args, card, claim=None)
        except ProvisionError as exc:
            # Registered, but the card did not take it: keep the credentials.
            keep = Path(f"{args.device_id}.bundle.json").absolute()
            write_bundle_file(keep, bundle)
            raise type(exc)(f"{exc}; registered all the same: install the saved "
                            f"{keep} with `simpul-field provision install`") from exc
        _label(bundle, site.site, args)
        if args.no_check:
            return 0
        return _check(client, args.device_id, args.timeout, card["stream"])


def run_batch(args: argparse.Namespace) -> int:
    _require(args, "httpx", "segno")
    if not 1 <= args.count <= 100000:
        raise InputError("--count must be 1..100000")
    out = Path(args.out)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetError(f"cannot create {out}: {exc.strerror or exc}") from exc
    from simpul_field.provision.label import write_label

    made: List[Bundle] = []
    with _client(args) as client:
        left = args.count
        while left:
            chunk = min(left, BATCH_CHUNK)
            items = client.pre_register(chunk, args.kind, args.district, args.prefix,
                                        args.tag)
            for n, item in enumerate(items):
                bundle = Bundle(device_id=item["device_id"], kind=args.kind,
                                mqtt_url=item["mqtt"]["url"],
                                password=item["mqtt"]["password"],
                                claim_code=item["claim_code"], fleet_url=client.url)
                try:
                    write_bundle_file(out / f"{bundle.device_id}.bundle.json", bundle)
                    write_label(out / f"{bundle.device_id}-label.svg", bundle.device_id,
                                None, item["claim_code"])
                except ProvisionError as exc:
                    lost = [i["device_id"] for i in items[n:]]
                    raise type(exc)(f"{exc}; {len(made)} bundles written; {len(lost)} boxes "
                                    f"are registered without one (deregister them): "
                                    f"{', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''}"
                                    ) from exc
                made.append(bundle)
            left -= chunk
    for bundle in made:
        print(f"{bundle.device_id}  {bundle.claim_code}  {out / bundle.device_id}.bundle.json")
    print(f"pre-registered {len(made)} boxes (unclaimed until each claims on its first "
          f"connection); bundles and labels in {out}")
    return 0


def run_install(args: argparse.Namespace) -> int:
    _require(args, *(["httpx"] if args.check else []), "segno")
    source = args.bundle
    bundle = parse_bundle(_read(source, "the bundle").decode(errors="replace"), source)
    site = _check_site(args)
    card = _card_inputs(args)
    _install(bundle, args, card, claim=site)
    _label(bundle, site.site, args)
    if not args.check:
        print("the box claims its registration on its first connection; "
              f"check it later with: simpul-field provision check {bundle.device_id}")
        return 0
    with _client(args) as client:
        return _check(client, bundle.device_id, args.timeout, card["stream"],
                      claim_code=bundle.claim_code)


def run_check(args: argparse.Namespace) -> int:
    _require(args, "httpx")
    with _client(args) as client:
        return _check(client, args.device_id, args.timeout, args.stream, args.claim_code)

