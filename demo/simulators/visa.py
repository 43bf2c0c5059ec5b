"""A VISA server (the demo's simulated VISA: its REST API for instances and its launch page)."""
from demo.simulators import Peer
from demo.visa_sim import SimulatedVisa

KIND = "visa"


def peer() -> Peer:
    visa = SimulatedVisa("sim-ill", users={"sim-user-token": "alice"}, build_seconds=0.3,
                         experiments=[{"id": "exp-1", "proposal": "SIM-1", "doi": "10.5291/SIM-1", "users": ["alice"]}])
    return Peer(visa, config={"user_token_issuer": "sim-idp"}, user_token="sim-user-token", resources={"cpus": 1},
                proposals=("SIM-1",))
