"""simpul_field's exception tree. Each error is one plain line and an exit code.

    FieldError                      exit 1
    ├── MissingExtraError           exit 2: a verb's optional package is not installed
    └── ProvisionError              (provision/errors.py: exit codes 1-8)

The flasher's errors stay firmware_bridge's (BridgeError, flasher/errors.py); the CLI
prints both kinds the same way.
"""


class FieldError(Exception):
    """Base of every error simpul_field raises on purpose."""

    exit_code = 1


class MissingExtraError(FieldError):
    """A verb needs a package of the `field` extra that is not installed."""

    exit_code = 2
