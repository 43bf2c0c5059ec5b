"""A facility's PaNOSC Search API (the demo federation's simulated one, over generated records)."""
from demo.catalogue import generate
from demo.federation import panosc_search_api
from demo.simulators import Peer

KIND = "panosc-search-api"


def peer() -> Peer:
    records = generate("sim-ill", 30)
    return Peer(panosc_search_api("sim-ill", records), config={"page_size": 10}, dataset_pid=records[0]["pid"])
