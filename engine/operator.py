"""Who asked for an operator action (retry, fork, pause, unpause): recorded in the log.

The user, the host and the process id of the caller, so that `sagactl logs` answers "who
paused this run, from where?" long after the process is gone.
"""

from __future__ import annotations

import getpass
import os
import socket

from .event_payloads import Operator


def who() -> Operator:
    """This process as the log records an operator."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        user = str(os.getuid())
    return Operator(user=user, host=socket.gethostname(), pid=os.getpid())
