"""A JupyterHub REST API (the demo federation's simulated hub)."""
from demo.federation import jupyterhub
from demo.simulators import Peer

KIND = "jupyterhub"


def peer() -> Peer:
    return Peer(jupyterhub(token="sim-hub-token", spawn_seconds=0.3), credential="sim-hub-token",
                resources={"cpus": 1})
