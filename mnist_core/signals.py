"""SIGTERM handled as Ctrl-C is, at any moment of a job: exit 143 for SIGTERM, 130 for SIGINT.

Kubernetes, ``ray job stop`` and schedulers stop a job with SIGTERM and read 143 as "stopped
as asked". ``stop_on_sigterm`` makes SIGTERM raise ``Terminated`` (a ``KeyboardInterrupt``)
in the main thread, so a job stops the way Ctrl-C stops it: it keeps what finished, stops the
Ray it started and prints how to go on. Which signal came is remembered, not read from the
exception, because code between the handler and the job (Ray's waits, progress bars) may
re-raise a plain ``KeyboardInterrupt``. Ray's ``init`` installs a SIGTERM handler of its own
(``sys.exit(15)``); ``session.connect`` restores ours around it.

While Ray imports and starts, a signal is held (``held``) and acted on the moment that ends: an
interrupt raised inside a compiled module's import is printed as "Exception ignored" with a
traceback and the import carries on. A second signal in that window acts at once.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

_received: list[int] = []
_held: list[int] = []  # the signals that came inside ``held``


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises ``KeyboardInterrupt``."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise ``Terminated`` in the main thread, and remember SIGINT as it
    raises ``KeyboardInterrupt``."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, _raise_interrupt)


def received() -> int | None:
    """The exit code of the signal that stopped this job, if one came (``None``): a library
    that catches every exception while importing (Keras does) may turn the interrupt into an
    error of its own, which must still end as the signal asked."""
    if signal.SIGTERM in _received:
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT if signal.SIGINT in _received else None


def handles_sigterm() -> bool:
    """Whether SIGTERM stops this job as a ``Terminated`` (now, or when ``held`` ends)."""
    return signal.getsignal(signal.SIGTERM) in (_raise_terminated, _hold)


def stop_if_received() -> None:
    """Raise now the interrupt a signal asked for, when code between the handler and here (an
    import deep inside Ray, say) caught the one the handler raised and carried on."""
    if _received:
        raise _interrupt(_received)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends, then stop as the first one asked; a second
    one stops at once. Where our handlers are not installed (a library caller), a no-op."""
    if not handles_sigterm():
        yield
        return
    _held.clear()
    signal.signal(signal.SIGTERM, _hold)
    signal.signal(signal.SIGINT, _hold)
    try:
        yield
    finally:
        stop_on_sigterm()
    if _held:
        raise _interrupt(_held)


def terminated() -> Terminated:
    """A ``Terminated`` for a SIGTERM that arrived some other way (Ray's own handler)."""
    _received.append(signal.SIGTERM)
    return Terminated()


def interrupted_exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 when SIGTERM stopped the job, 130 for Ctrl-C."""
    if isinstance(interrupt, Terminated) or signal.SIGTERM in _received:
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT


def exit_at_once(signum, frame) -> None:
    """A handler for the moments before a job holds anything: exit 128 + the signal."""
    _received.append(signum)
    raise SystemExit(128 + signum)


def _raise_terminated(signum, frame) -> None:
    _received.append(signum)
    raise Terminated()


def _raise_interrupt(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt()


def _hold(signum, frame) -> None:
    _received.append(signum)
    _held.append(signum)
    if len(_held) > 1:
        raise _interrupt(_held)


def _interrupt(signals: list[int]) -> KeyboardInterrupt:
    """What the signals that came ask for: ``Terminated`` when SIGTERM is among them."""
    return Terminated() if signal.SIGTERM in signals else KeyboardInterrupt()
