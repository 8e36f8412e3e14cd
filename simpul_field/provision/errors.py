"""Provisioning errors: each is one plain line for the technician, with an exit code.

    ProvisionError (FieldError)         exit 1
    ├── InputError        bad option values, unreadable input files       exit 2
    ├── FleetError        the fleet answered, but not yes                 exit 3
    │   ├── AuthError       401/403: the token                            exit 4
    │   └── ConflictError   409: already registered                       exit 5
    ├── UnreachableError  no network, DNS, timeout                        exit 6
    ├── TargetError       the card or directory cannot take the bundle    exit 7
    └── NotOnlineError    the check timed out; names what is missing      exit 8
"""

from simpul_field.errors import FieldError


class ProvisionError(FieldError):
    exit_code = 1


class InputError(ProvisionError):
    exit_code = 2


class FleetError(ProvisionError):
    exit_code = 3


class AuthError(FleetError):
    exit_code = 4


class ConflictError(FleetError):
    exit_code = 5


class UnreachableError(ProvisionError):
    exit_code = 6


class TargetError(ProvisionError):
    exit_code = 7


class NotOnlineError(ProvisionError):
    exit_code = 8
