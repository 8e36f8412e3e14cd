"""Reset strategies: small callables that put a board into its bootloader.

An Arduino's auto-reset circuit turns a falling DTR (or RTS, on some USB adapters) into
a short reset pulse, and the bootloader then listens for a second or so. A
pseudo-terminal or a bare TTL adapter has no modem lines: there the strategy says so
and the flasher carries on, relying on the technician's reset button or on a board
that is already waiting in its bootloader.
"""

import errno
import time
from typing import Any, Callable, Dict

ResetStrategy = Callable[[Any], bool]

_NO_MODEM_LINES = (errno.ENOTTY, errno.EINVAL, errno.ENOTSUP, errno.EIO)


def _set_lines(port: Any, state: bool) -> None:
    port.dtr = state
    port.rts = state


def dtr_rts_pulse(port: Any, low_s: float = 0.25, settle_s: float = 0.05) -> bool:
    """Drop DTR/RTS, raise them again (the falling edge resets the board); True if done.

    The timings are avrdude's for the `arduino` programmer.
    """
    try:
        _set_lines(port, False)
        time.sleep(low_s)
        _set_lines(port, True)
    except OSError as exc:
        if exc.errno in _NO_MODEM_LINES:
            return False
        raise
    except Exception as exc:  # pyserial's SerialException wraps some ioctl failures
        if "ioctl" in str(exc).lower() or "inappropriate" in str(exc).lower():
            return False
        raise
    time.sleep(settle_s)
    port.reset_input_buffer()
    return True


def no_reset(port: Any) -> bool:
    """For boards already in their bootloader (or reset by hand)."""
    return False


STRATEGIES: Dict[str, ResetStrategy] = {"dtr-rts": dtr_rts_pulse, "none": no_reset}
