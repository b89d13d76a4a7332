"""fromscratch: transformers from scratch, as one reproducible experiment pipeline."""

__version__ = "0.1.0"


class FromScratchError(Exception):
    """An error the user can fix; its message is one line: what is wrong, what is allowed."""
