"""A remote desktop gateway's page (the demo federation's simulated Guacamole)."""
from demo.federation import desktop_gateway
from demo.simulators import Peer

KIND = "remote-desktop"


def peer() -> Peer:
    return Peer(desktop_gateway("Guacamole"))
