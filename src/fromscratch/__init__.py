"""fromscratch: transformers from scratch, as one reproducible experiment pipeline."""

import signal

__version__ = "0.1.0"


class FromScratchError(Exception):
    """An error the user can fix; its message is one line: what is wrong, what is allowed."""


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
