"""Debug-level stage timing: where a call's time goes, in the daemon's log (`--log-level debug`).

    with stage(log, "task %s: mount", cid): ...      → msg="task abc: mount took 3.1 ms"

Costs one `isEnabledFor` check when debug logging is off.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stage(logger: logging.Logger, what: str, *args: object) -> Iterator[None]:
    if not logger.isEnabledFor(logging.DEBUG):
        yield
        return
    t = time.perf_counter()
    try:
        yield
    finally:
        logger.debug(what + " took %.1f ms", *args, (time.perf_counter() - t) * 1e3)
