"""fromscratch: transformers from scratch, as one reproducible experiment pipeline."""

import contextlib
import re
import signal
import threading
from collections.abc import Iterator

__version__ = "0.1.0"


def leave_objects_to_the_os_at_exit() -> None:
    """For a process about to end: its exit no longer runs the garbage collector over what
    it made so far. At exit Python collects again and again as it empties each module; over
    the million or so objects torch makes (its compiler's too, which every optimizer
    imports), that took 1.2 s of a 9 s demo job on a 2-core CPU, and 0.3 s with them
    frozen. atexit handlers (W&B's) still run."""
    import gc

    gc.freeze()


class FromScratchError(Exception):
    """An error the user can fix; its message is one line: what is wrong, what is allowed."""


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message (another library's may run over many), or its
    type's name where it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def message_of_ours(line: str) -> str | None:
    """The message of a FromScratchError (or a subclass) that another process's traceback
    ends with (`fromscratch.train.config.ConfigError: lr: ...`), written for the user as it
    is; None for any other error."""
    ours = re.match(r"fromscratch(\.\w+)*\.\w+Error: ", line)
    return line[ours.end() :] if ours else None


class Interrupted(FromScratchError):
    """Training stopped on a signal after saving a checkpoint; `--resume` continues it.
    how_to_resume: the end of the message, for commands that resume another way."""

    def __init__(self, signum: int, step: int, how_to_resume: str = "resume with --resume"):
        # the arguments, so that it pickles (submitit)
        super().__init__(signum, step, how_to_resume)
        self.signum, self.step, self.how_to_resume = signum, step, how_to_resume

    def __str__(self) -> str:
        name = "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name
        return f"stopped by {name} at step {self.step}; checkpoint saved, {self.how_to_resume}"


_stopped_by: list[int] = []  # the signals exit_by_signal received, inside exit_on_termination


def exit_by_signal(signum: int, frame: object) -> None:
    """Exit with the status a shell gives a process that `signum` stopped (128 + its
    number), by raising SystemExit, so that `finally` blocks run first and remove the
    temporary outputs a stage was writing (Python's default for SIGTERM and SIGHUP ends the
    process on the spot). Raised inside a library's C code, the SystemExit may come out as
    an error of the library's own (numpy's file writes turn it into a TypeError):
    `stop_signal` still tells the stop."""
    _stopped_by.append(signum)
    raise SystemExit(128 + signum)


def stop_signal() -> int | None:
    """The signal that exit_by_signal received in this exit_on_termination block, if any."""
    return _stopped_by[0] if _stopped_by else None


def heeded(*signals: int) -> tuple[int, ...]:
    """Those of `signals` the process was not started to ignore. `nohup` ignores SIGHUP, so
    that the process outlives its terminal; a shell script starts its background jobs with
    SIGINT ignored, so that Ctrl-C stops only what runs in the foreground. Such a process
    must go on ignoring them."""
    return tuple(s for s in signals if signal.getsignal(s) is not signal.SIG_IGN)


@contextlib.contextmanager
def exit_on_termination() -> Iterator[None]:
    """Within the block, SIGTERM (Snakemake stopping a rule, scancel) and SIGHUP (a closed
    terminal) go to `exit_by_signal`, unless the process was told to ignore them (`nohup`
    ignores SIGHUP). Handlers can only be set in the main thread: in another one the block
    changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGTERM, *heeded(signal.SIGHUP))
    previous = {stop: signal.signal(stop, exit_by_signal) for stop in stops}
    _stopped_by.clear()
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
        _stopped_by.clear()
