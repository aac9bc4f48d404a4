"""A wall-clock limit on Python code running in this thread: past it, the code is interrupted by an exception raised
in this thread at its next Python instruction (PyThreadState_SetAsyncExc, from a watcher thread).

Used where torch works in Python for an unbounded time and gives no way to stop it: torch.export's symbolic shape
reasoning over some models' dynamic dims (sympy) can take minutes where a less dynamic export takes a second.
Code in C that does not call back into Python is not interrupted until it returns.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading


class OverTimeLimit(Exception):
    """Raised inside the limited block when its time is up (a class: raised asynchronously, without arguments)."""


class Limit:
    """What time_limit yields: expired tells whether the limit fired (code in the block may have caught
    OverTimeLimit and raised an error of its own instead)."""
    expired = False


def _raise_in(thread_id: int, exc_type) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type) if exc_type else None)


@contextlib.contextmanager
def time_limit(seconds: float | None, limit: Limit | None = None, repeat_s: float = 1.0):
    """Run the block (`with time_limit(s, limit):`); past `seconds`, raise OverTimeLimit in it, and again every
    repeat_s should code in the block catch it as an Exception and go on. The clock starts inside the block, so the
    exception is never raised before it (only where the block's own code runs, and its caller's handler around the
    `with` sees it); a limit that expires just as the block ends is withdrawn (or swallowed) rather than raised
    later in the caller. limit (yielded; made if not given) tells whether it fired. seconds=None: no limit."""
    limit = limit if limit is not None else Limit()
    if seconds is None:
        yield limit
        return
    target = threading.get_ident()
    lock = threading.Lock()
    active = [True]
    armed, done = threading.Event(), threading.Event()

    def watch():
        armed.wait()
        wait = seconds
        while not done.wait(wait):
            with lock:
                if not active[0]:
                    return
                _raise_in(target, OverTimeLimit)
                limit.expired = True
            wait = repeat_s

    watcher = threading.Thread(target=watch, name="tinydl-time-limit", daemon=True)
    watcher.start()
    try:
        armed.set()
        yield limit
    finally:
        while True:  # the limit switched off, even should its exception arrive only now
            try:
                with lock:
                    active[0] = False
                    if limit.expired:  # raised but maybe not yet delivered: withdraw what is still pending
                        _raise_in(target, None)
                break
            except OverTimeLimit:
                continue
        armed.set()
        done.set()
        watcher.join()


__all__ = ["Limit", "OverTimeLimit", "time_limit"]
