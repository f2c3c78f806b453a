"""Children that stop when their parent is gone, even when it was SIGKILLed and could not stop them:
the local stack's services (AgentCore, TTS, the model stand-in), the tests' services and the engine
tests' vLLM. Standard library only: `synapscribe.cli` imports it before any subcommand."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, MutableMapping

#: Set in a child's environment to its parent's pid: the child stops when that parent is gone
#: (exit_with_parent), so a SIGKILLed `synapscribe local` leaves no AgentCore, TTS or stand-in behind.
PARENT_PID_ENV = "SYNAPSCRIBE_PARENT_PID"
#: How often a child looks for its parent, and how long it then has to stop after SIGTERM.
PARENT_POLL_SECONDS = 0.5
ORPHAN_GRACE_SECONDS = 20.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parent_env() -> dict[str, str]:
    """The environment entry that ties a child started now to this process (exit_with_parent)."""
    return {PARENT_PID_ENV: str(os.getpid())}


def exit_with_parent(environ: MutableMapping[str, str] = os.environ) -> threading.Thread | None:
    """In a child started with parent_env(): watch the parent and SIGTERM ourselves (a clean
    stop) when it is gone, then exit hard if that stop has not ended it after ORPHAN_GRACE_SECONDS.

    A thread that polls the parent pid, not prctl(PR_SET_PDEATHSIG): the kernel sends that signal
    when the parent *thread* that forked us exits, which would stop a child a worker thread
    started (prctl(2)); and a preexec_fn is not safe in a parent with threads (subprocess docs)."""
    wanted = environ.pop(PARENT_PID_ENV, None)  # our own children get their own, or none
    if not wanted or not wanted.isdigit():
        return None
    parent = int(wanted)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_SECONDS)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for a child that is not ours to change (vLLM): Linux sends the child SIGTERM
    when the thread that started it exits (prctl(2) PR_SET_PDEATHSIG), so start it from the main
    thread. libc is looked up here, in the parent: between fork and exec the function makes only
    the prctl and getppid calls. None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before the prctl took hold
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
