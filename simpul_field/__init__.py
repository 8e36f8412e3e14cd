"""The field technician's tool, `simpul-field`: flash a sensor board, provision a box.

    cli.py          the `simpul-field` entry point: verbs, --version, one-line errors
    errors.py       FieldError, the base of every error simpul_field raises on purpose
    extras.py       a verb names the optional packages it needs before it starts
    verbs/          one module per verb (flash, provision), each with register()
    provision/      the provisioning library: bundle, fleet client, label, TLS, check

It stands on firmware_bridge (the flasher) and simpul_wire; firmware_bridge knows
nothing of it. Heavy packages (httpx, segno, intelhex, esptool, tqdm) are imported only
inside the verbs, so `--help` works in an agent-only install.
"""

# The wheel's version is the one to report; this is for a source checkout without one.
__version__ = "0.1.0"
