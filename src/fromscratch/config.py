"""The base of every config (models, training, SLURM resources): a plain dataclass that
checks its fields when it is built, so a bad value fails before any job starts.

No torch here: the launcher process that waits on a SLURM job imports only this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from typing import Any, Self

from fromscratch import FromScratchError


class ConfigError(FromScratchError, ValueError):
    """A bad config: a one-line message naming the field and what is allowed."""


EXPONENT_FORM = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def is_of_type(value: Any, hint: Any) -> bool:
    """Whether a plain value (read from JSON or YAML) is of type `hint`: str, int, float (an
    int is a fine float: YAML writes 0 for 0.0, not the reverse), bool, None, dict and list
    (with their items' types where the hint gives them), or a union of these.  Any other
    hint takes any value: the code it goes to checks it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # `int | None`
        return any(is_of_type(value, h) for h in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and (hint is float or isinstance(value, int))
    if hint is str:
        return isinstance(value, str)
    if dict in (hint, origin):
        return isinstance(value, dict) and all(
            not args or (is_of_type(k, args[0]) and is_of_type(v, args[1]))
            for k, v in value.items()
        )
    if list in (hint, origin):
        return isinstance(value, list) and all(not args or is_of_type(v, args[0]) for v in value)
    return True


def check_integer(who: str, name: str, value: Any, least: int = 1, note: str = "") -> None:
    """A one-line ConfigError unless `value` is an integer of at least `least`: for a
    stage's or a function's argument what `Config._check_positive` is for a field.  The
    type is checked too: `fromscratch run` does not look inside a plain `dict` argument,
    and a call from Python is not checked at all.  note: what the bound means, " (0: all)"."""
    if not is_of_type(value, int) or value < least:
        raise ConfigError(f"{who}: {name}={value!r} must be an integer >= {least}{note}")


MAX_SEED = 2**63 - 1  # torch's generators take a signed 64-bit seed


def check_seed(who: str, seed: Any) -> None:
    """A one-line ConfigError unless `seed` is one torch's generators take."""
    if not is_of_type(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{who}: seed={seed!r} must be an integer from 0 to 2**63 - 1")


@dataclasses.dataclass
class Config:
    """Base of every config: plain types only, so it round-trips through JSON/YAML.

    Checks run in `__post_init__`, so a bad value fails when the config is built (before
    any job starts), not somewhere inside a forward pass.
    """

    # text fields that hold several names, and what joins them (tags: "a,b")
    JOINED_BY: typing.ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, self._checked(f.name, getattr(self, f.name), hints[f.name]))

    def _checked(self, name: str, value: Any, hint: Any) -> Any:
        """`value` if it is of type `hint` (a number written as text read as the number)."""
        allowed = typing.get_args(hint) or (hint,)  # `int | None` -> (int, NoneType)
        # PyYAML reads YAML 1.1, where a number without a dot (1e-3, 1e6) is a string
        if (
            isinstance(value, str)
            and str not in allowed
            and (float in allowed or (int in allowed and EXPONENT_FORM.fullmatch(value)))
        ):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            self._fail(name, f"{value!r} must be a finite number")
        if int in allowed and float not in allowed and isinstance(value, float):
            # a whole number in exponent form (2.0e+6 tokens) is the integer it names
            value = int(value) if value.is_integer() else value
        if is_of_type(value, hint):
            return value
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        hint = ""
        if bool not in allowed and isinstance(value, bool):  # `off` (on, yes, no) in YAML
            hint = " (YAML reads on/off/yes/no as true/false: quote it)"
        elif (joiner := self.JOINED_BY.get(name)) and isinstance(value, list):
            hint = f" (several are one text, joined by {joiner!r}: {joiner.join(map(str, value))})"
        self._fail(name, f"{value!r} is not of type {names}{hint}")

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

    def _check_not_negative(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) < 0:
                self._fail(name, f"{getattr(self, name)!r} must be 0 or more")

    def _check_in(self, interval: str, *names: str) -> None:
        """Each field in `interval`, written as in mathematics: "[0, 1)" or "[0, 1]".

        None passes: the field is unset and another field's value is used.
        """
        low, high = (float(end) for end in interval[1:-1].split(","))
        for name in names:
            value = getattr(self, name)
            if value is None:
                continue
            above_low = value >= low if interval[0] == "[" else value > low
            below_high = value <= high if interval[-1] == "]" else value < high
            if not (above_low and below_high):
                self._fail(name, f"{value!r} must be in {interval}")

    def _check_dropout(self, *names: str) -> None:
        self._check_in("[0, 1)", *names)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Build from a plain dict (YAML, a checkpoint); unknown keys are an error, not ignored."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping of settings, got {d!r}")
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
