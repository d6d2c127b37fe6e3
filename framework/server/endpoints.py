"""The one place that checks a server protocol and a TCP port, for the launchers, the service and the clients.

Both raise :class:`~framework.exceptions.ConfigurationError` with a message that starts with *where* (the
parameter or option checked) and names the allowed values or range.
"""

from __future__ import annotations

from framework.exceptions import ConfigurationError, did_you_mean

PROTOCOLS = ("grpc", "http")
"""The protocols the clients speak and the local servers serve."""
PORT_RANGE = (1, 65535)
PICK_FREE = -1
"""A port of ``-1`` (given to a launcher): pick a free one."""


def check_protocol(protocol: object, where: str = "protocol") -> str:
    """*protocol* when it is ``grpc`` or ``http``; else a :class:`ConfigurationError` naming both."""
    if protocol not in PROTOCOLS:
        raise ConfigurationError(
            f"{where}: protocol must be 'grpc' or 'http', got {protocol!r}.{did_you_mean(str(protocol), PROTOCOLS)}")
    return str(protocol)


def check_port(port: object, where: str = "port", *, pick_free: bool = False) -> int:
    """*port* as an ``int`` in 1..65535 (also ``-1``, pick a free one, when *pick_free*); else a
    :class:`ConfigurationError` naming the range."""
    low, high = PORT_RANGE
    allowed = f"{low}..{high}" + (" or -1 (pick a free port)" if pick_free else "")
    try:
        value = int(port)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: a port must be an integer in {allowed}, got {port!r}") from None
    if isinstance(port, bool) or not (low <= value <= high or (pick_free and value == PICK_FREE)):
        raise ConfigurationError(f"{where}: port must be in {allowed}, got {port!r}")
    return value


__all__ = ["PICK_FREE", "PORT_RANGE", "PROTOCOLS", "check_port", "check_protocol"]
