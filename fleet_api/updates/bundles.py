"""`simpul-fleet update ...`: make, sign, check and publish agent update bundles.

    keygen  --out KEY                       new ed25519 key (KEY, mode 0600); prints the
                                            public key for the boxes' [update] public_keys
    sign    --key KEY --wheels DIR --version V --out BUNDLE
                                            bundle every wheel in DIR (make them with
                                            `pip wheel '.[agent]' -w DIR` for the boxes'
                                            Python and CPU) under a signed manifest
    verify  --public-key B64 BUNDLE         what a box checks, run on the fleet side
    publish --public-key B64 --dir DIR BUNDLE
                                            verify, then place it as DIR/simpul-agent-V.tar
                                            (the directory the fleet serves bundles from)

The bundle format lives in the contract, simpul_wire.bundle, so the signer and the box
share it.
`waves` and `next_action` are the staged rollout's decisions, pure, for the fleet's
rollout job (a device's outcome: "succeeded" when its birth reports the new version
after the command succeeded; "failed" when the command fails, or the box comes back
with the old version, or stays silent past its trial deadline).
The private key never leaves the machine that signs; boxes hold only public keys.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from simpul_wire.bundle import (
    build_manifest,
    decode_public_key,
    extract_wheels,
    generate_key,
    open_verified,
    sign_manifest,
    write_bundle,
)
from simpul_wire.errors import UpdateError


def register(sub: Any) -> None:
    p = sub.add_parser("update", help="make, sign and publish agent update bundles")
    usub = p.add_subparsers(dest="update_command", metavar="ACTION")
    usub.required = True
    k = usub.add_parser("keygen", help="a new ed25519 signing key")
    k.add_argument("--out", required=True, help="private key file to create (PEM, 0600)")
    k.set_defaults(func=cmd_keygen)
    s = usub.add_parser("sign", help="bundle and sign a wheel set")
    s.add_argument("--key", required=True, help="private key file from keygen")
    s.add_argument("--wheels", required=True, help="directory of .whl files")
    s.add_argument("--version", required=True, help="the simpul version in the wheels")
    s.add_argument("--extra", default="agent", help="extra to install (default: agent)")
    s.add_argument("--out", required=True, help="bundle file to write")
    s.set_defaults(func=cmd_sign)
    for name, text in (("verify", "check a bundle as a box would"),
                       ("publish", "verify and place a bundle where the fleet serves it")):
        v = usub.add_parser(name, help=text)
        v.add_argument("--public-key", required=True, action="append",
                       help="trusted public key (base64); repeatable")
        v.add_argument("bundle")
        if name == "publish":
            v.add_argument("--dir", required=True, help="directory the fleet serves")
        v.set_defaults(func=cmd_verify if name == "verify" else cmd_publish)


def _fail(message: str) -> int:
    print(f"simpul-fleet: {message}", file=sys.stderr)
    return 1


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        return _fail(f"{out} exists; refusing to overwrite a signing key")
    pem, public = generate_key()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    print(public)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    wheels = sorted(Path(args.wheels).glob("*.whl"))
    if not any(w.name.startswith(f"simpul-{args.version}-") for w in wheels):
        return _fail(f"{args.wheels} has no simpul-{args.version}-*.whl")
    try:
        manifest = build_manifest(wheels, args.version, args.extra)
        signature = sign_manifest(manifest, Path(args.key).read_bytes())
    except (OSError, ValueError, UpdateError) as exc:
        return _fail(f"cannot sign: {exc}")
    write_bundle(Path(args.out), manifest, signature, wheels)
    print(f"{args.out}: simpul {args.version}, {len(wheels)} wheels, signed")
    return 0


def _verify(args: argparse.Namespace) -> Any:
    trusted = [decode_public_key(k) for k in args.public_key]
    manifest = open_verified(Path(args.bundle), trusted)
    with tempfile.TemporaryDirectory() as tmp:  # every wheel against its signed hash
        extract_wheels(Path(args.bundle), manifest, Path(tmp))
    return manifest


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        manifest = _verify(args)
    except UpdateError as exc:
        return _fail(str(exc))
    print(f"ok: simpul {manifest.version}, {len(manifest.files)} wheels, signature valid")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        manifest = _verify(args)
    except UpdateError as exc:
        return _fail(str(exc))
    target = Path(args.dir) / f"simpul-agent-{manifest.version}.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(args.bundle, tmp)
    tmp.replace(target)
    print(target)
    return 0


# -- staged rollout (pure; the fleet's leased job runs it) ------------------------------
DEFAULT_WAVES = (0.01, 0.1, 0.5, 1.0)


def waves(devices: List[str], fractions: Sequence[float] = DEFAULT_WAVES,
          first_at_least: int = 1) -> List[List[str]]:
    """Split devices (in a stable order, e.g. canaries first) into cumulative waves."""
    out: List[List[str]] = []
    done = 0
    for fraction in fractions:
        upto = max(first_at_least, math.ceil(len(devices) * fraction))
        upto = min(len(devices), upto)
        if upto > done:
            out.append(devices[done:upto])
            done = upto
    return out


def next_action(plan: List[List[str]], outcome: Dict[str, str],
                max_failure_ratio: float = 0.1) -> Tuple[str, List[str]]:
    """Given each device's outcome so far ("succeeded", "failed", or absent while it
    runs), return ("send", devices) for the next wave, ("wait", []) while the current
    wave runs, ("stop", failed) once a wave's failures pass the ratio, or ("done", [])."""
    for wave in plan:
        finished = [d for d in wave if d in outcome]
        failed = [d for d in wave if outcome.get(d) == "failed"]
        if failed and len(failed) / len(wave) > max_failure_ratio:
            return "stop", failed
        if not finished:
            return "send", wave
        if len(finished) < len(wave):
            return "wait", []
    return "done", []
