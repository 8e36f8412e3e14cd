"""Child process for test_outbox_crash: append to an outbox until killed.

Prints each seq once `append` has returned (the record is committed), so the test knows
what must survive the kill. Bodies carry a random pad and its digest, so a half-written
record would show.
"""

import hashlib
import random
import sys

from agent.outbox import Outbox


def main(path: str, max_bytes: int) -> None:
    outbox = Outbox(path, max_bytes=max_bytes)
    rng = random.Random()
    while True:
        pad = rng.randbytes(rng.randint(10, 12000)).hex()
        body = {"ts": "2026-11-23T08:00:00+00:00", "pad": pad,
                "sha": hashlib.sha256(pad.encode()).hexdigest()}
        stream = "health" if rng.random() < 0.2 else "telemetry"
        seq = outbox.append(stream, body)
        sys.stdout.write(f"{stream} {seq}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
