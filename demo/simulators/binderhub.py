"""A BinderHub (the demo federation's simulated Binder: health, launch page, build event stream)."""
from demo.federation import binderhub
from demo.simulators import Peer

KIND = "binderhub"


def peer() -> Peer:
    return Peer(binderhub(build_seconds=0.3), config={"default_repository": "gh/panosc-eu/panosc-notebooks/HEAD"})
