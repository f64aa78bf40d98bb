"""A value that must never reach a log line, an error message or a repr."""

from __future__ import annotations


class Secret:
    """Wraps a secret string; only ``reveal()`` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class UnreadSecret(Secret):
    """A secret kept in a variable or file that was not read: commands that send nothing
    (`status`, `hits`, ...) must answer without the service's environment. ``where`` is
    its key path."""

    __slots__ = ("_where",)

    def __init__(self, where: str) -> None:
        super().__init__("")
        self._where = where

    def reveal(self) -> str:
        raise RuntimeError(f"{self._where} was not read: only commands that send read secrets")
