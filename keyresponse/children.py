"""Child processes that never outlive us: the sandbox, the Prefect server, the receiver, the demo's runner.

Production code and the sandbox both start children, so this lives in the library, not in `sandbox/`
(which needs the `sandbox` extra).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the parent dies, so no child of ours is ever orphaned."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
