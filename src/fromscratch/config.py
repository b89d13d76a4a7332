"""The base of every config (models, training, SLURM resources): a plain dataclass that
checks its fields when it is built, so a bad value fails before any job starts.

No torch here: the launcher process that waits on a SLURM job imports only this.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Self

from fromscratch import FromScratchError


class ConfigError(FromScratchError, ValueError):
    """A bad config: a one-line message naming the field and what is allowed."""


@dataclasses.dataclass
class Config:
    """Base of every config: plain types only, so it round-trips through JSON/YAML.

    Checks run in `__post_init__`, so a bad value fails when the config is built (before
    any job starts), not somewhere inside a forward pass.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            self._check_type(f.name, getattr(self, f.name), hints[f.name])

    def _check_type(self, name: str, value: Any, hint: Any) -> None:
        allowed = typing.get_args(hint) or (hint,)  # `int | None` -> (int, NoneType)
        for t in allowed:
            if t is type(None) and value is None:
                return
            if t is bool and isinstance(value, bool):
                return
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and (t is float or (t is int and isinstance(value, int))):
                return  # an int is a fine float (YAML writes 0 for 0.0), not the reverse
            if t is str and isinstance(value, str):
                return
            if t in (dict, list) and isinstance(value, t):
                return
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        self._fail(name, f"{value!r} is not of type {names}")

    def _fail(self, name: str, message: str) -> typing.NoReturn:
        raise ConfigError(f"{type(self).__name__}.{name}: {message}")

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            self._fail(name, f"{value!r} is not one of {', '.join(allowed)}")

    def _check_positive(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) < 1:
                self._fail(name, f"{getattr(self, name)!r} must be at least 1")

    def _check_dropout(self, *names: str) -> None:
        for name in names:  # None: unset, another field's value is used
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                self._fail(name, f"{value!r} must be in [0, 1)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Build from a plain dict (YAML, a checkpoint); unknown keys are an error, not ignored."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown keys {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(known)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
