"""The enclosure label: device id, site and the claim code, the code also as a QR image.

Always a full QR code (never a Micro QR, which phones read poorly).
SVG labels carry the text beside the QR; PNG labels are the QR alone (no font
rendering without Pillow), so the text is printed on the terminal for the marker pen.
The QR holds `simpul:<device_id>:<claim_code>` (`simpul:<device_id>` without a code),
which a phone can read to claim the box (`POST /api/v1/claims/{code}`) or look it up.
"""

import io
import sys
from pathlib import Path
from typing import Optional, TextIO
from xml.sax.saxutils import escape

import segno

from simpul_field.provision.errors import InputError, TargetError


def qr_payload(device_id: str, claim_code: Optional[str]) -> str:
    return f"simpul:{device_id}:{claim_code}" if claim_code else f"simpul:{device_id}"


def label_svg(device_id: str, site: Optional[str], claim_code: Optional[str]) -> str:
    qr = segno.make_qr(qr_payload(device_id, claim_code), error="m")
    inner = qr.svg_inline(scale=4, border=2)
    size = qr.symbol_size(scale=4, border=2)[0]
    lines = [("device", device_id), ("site", site or "(set at install)"),
             ("claim", claim_code or "(none)")]
    text = "".join(
        f'<text x="{size + 12}" y="{28 + 26 * i}" font-family="monospace" font-size="15">'
        f'<tspan font-weight="bold">{escape(k)}</tspan> {escape(v)}</text>'
        for i, (k, v) in enumerate(lines))
    width = size + 12 + 11 * max(len(k) + len(v) + 1 for k, v in lines) + 12
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size}" '
            f'viewBox="0 0 {width} {size}"><rect width="100%" height="100%" fill="#fff"/>'
            f'<g>{inner}</g>{text}</svg>\n')


def write_label(path: Path, device_id: str, site: Optional[str],
                claim_code: Optional[str]) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise InputError(f"label {path}: name it .svg or .png")
    try:
        if suffix == ".svg":
            path.write_text(label_svg(device_id, site, claim_code), encoding="utf-8")
        else:
            segno.make_qr(qr_payload(device_id, claim_code), error="m").save(
                str(path), kind="png", scale=8, border=2)
    except OSError as exc:
        raise TargetError(f"cannot write the label {path}: {exc.strerror or exc}") from exc


def print_label(device_id: str, site: Optional[str], claim_code: Optional[str],
                out: TextIO = sys.stdout) -> None:
    """The label's text, and the QR drawn in the terminal when it is one."""
    out.write(f"device  {device_id}\nsite    {site or '(set at install)'}\n"
              f"claim   {claim_code or '(none)'}\n")
    if out.isatty():
        buf = io.StringIO()
        segno.make_qr(qr_payload(device_id, claim_code), error="m").terminal(out=buf, compact=True)
        out.write(buf.getvalue())
