"""The one place that checks a server protocol and a TCP port, for the launchers, the service and the clients.

Both raise :class:`~framework.exceptions.ConfigurationError` with a message that starts with *where* (the
parameter or option checked) and names the allowed values or range.
"""

from __future__ import annotations

from ..constraints import Constraint
from ..exceptions import ConfigurationError

PROTOCOLS = ("grpc", "http")
"""The protocols the clients speak and the local servers serve."""
PORT_RANGE = (1, 65535)
PICK_FREE = -1
"""A port of ``-1`` (given to a launcher): pick a free one."""

PROTOCOL = Constraint(allowed=PROTOCOLS)
"""A server's protocol (the ``protocol`` parameters and the ``protocol=`` option)."""
PORT = Constraint(minimum=PORT_RANGE[0], maximum=PORT_RANGE[1])
"""A server's port."""
PORT_OR_FREE = Constraint(minimum=PORT_RANGE[0], maximum=PORT_RANGE[1], special={PICK_FREE: "pick a free port"})
"""A port given to a launcher: also ``-1``, pick a free one."""


def check_protocol(protocol: object, where: str = "protocol") -> str:
    """*protocol* when it is ``grpc`` or ``http``; else a :class:`ConfigurationError` naming both."""
    return str(PROTOCOL.check("protocol", protocol, where))


def check_port(port: object, where: str = "port", *, pick_free: bool = False) -> int:
    """*port* as an ``int`` in 1..65535 (also ``-1``, pick a free one, when *pick_free*); else a
    :class:`ConfigurationError` naming the range."""
    constraint = PORT_OR_FREE if pick_free else PORT
    try:
        if isinstance(port, bool):  # int(True) would be 1
            raise TypeError(port)
        value = int(port)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: a port must be an integer, {constraint.text()}; got {port!r}") from None
    return int(constraint.check("port", value, where))


__all__ = ["PICK_FREE", "PORT", "PORT_OR_FREE", "PORT_RANGE", "PROTOCOL", "PROTOCOLS", "check_port",
           "check_protocol"]
