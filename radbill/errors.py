"""The exception family services raise for bad input and conflicts.

The CLI turns each into a one-line message and a non-zero exit; the RADIUS hook never lets one
escape. Messages are written for the operator: they say what is wrong and with which value.
"""


class DomainError(Exception):
    """Base of every error a service raises on purpose."""


class NotFound(DomainError):
    """The named thing does not exist."""


class Conflict(DomainError):
    """The change would break a uniqueness rule or an allowed state transition."""


class InvalidInput(DomainError, ValueError):
    """A value is malformed or out of range."""
