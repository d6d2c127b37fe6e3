"""Errors of the SONIC client and service. All are :class:`~framework.exceptions.FrameworkError`s whose
message names the model, the server and the event, and says how to fix the problem."""

from __future__ import annotations

from ..exceptions import ConfigurationError, FrameworkError, ServerError


class TritonDataError(FrameworkError):
    """The inputs a producer gave do not fit the model (shape, dtype, batch size), or an output was read
    that does not exist. Raised before anything is sent to the server."""


class TritonConfigError(ConfigurationError):
    """The client configuration does not fit the server: the model's local ``config.pbtxt`` disagrees with
    what the server serves, an unknown output was asked for, ..."""


class TritonServerError(ServerError):
    """A request to the Triton server failed (after the allowed tries), or the server could not be used."""

    def __init__(self, message: str, *, model: str = "", server: str = "", address: str = "", event: str = "",
                 status: str = "", tries: int = 0):
        super().__init__(message)
        self.model = model
        self.server = server
        self.address = address
        self.event = event
        self.status = status
        self.tries = tries


__all__ = ["TritonConfigError", "TritonDataError", "TritonServerError"]
