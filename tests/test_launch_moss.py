"""Launches into JupyterHub + jupyterhub-moss spawning Slurm jobs, as ESRF runs it (JupyterHub 6.1,
jupyterhub-moss 10.1, batchspawner 1.3, Debian slurm-wlm + munge, one node on loopback).

One Slurm and one hub serve the whole module (a Slurm job takes seconds to start). The node declares
4 CPUs, 3900 MB and one GPU; partitions ``cpu`` (no GPU) and ``gpu``. Every test cancels its launches:
a session left running holds the node's memory."""
from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from panmodel.errors import Conflict
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef
from tests.conftest import make_settings
from tests.jupyterhub_fixture import stop_hub
from tests.moss_fixture import BIN, SLOW_SPAWN_SECONDS, USERNAME_PATTERN, start_moss_hub
from tests.slurm_fixture import start_slurm, stop_slurm
from tests.test_launch import (  # the plain-hub launch tests, run here against the moss hub too  # noqa: F401
    person,
    test_a_retry_returns_the_same_launch_and_never_a_second_session,
    test_after_a_crash_between_start_and_record_the_launch_is_reconciled,
    test_the_launch_api,
)

pytestmark = pytest.mark.slow  # a real Slurm and a moss JupyterHub

ADMIN = Principal("test", admin=True)
ID10 = Dataset(pid="10.15151/ESRF-ES-1234", facility="esrf", title="XPCS of colloids", instrument="ID10",
               creation_date=datetime(2024, 5, 2, tzinfo=timezone.utc), doi="10.15151/ESRF-ES-1234",
               documents=(DocumentRef("ma1234", "Colloids", "proposal", "10.15151/ESRF-ES-1234"),), source="esrf-search")
PARTITIONS = [
    {"id": "cpu", "title": "x86 CPUs", "gpu": False, "max_cpus": 4, "max_memory_gb": 3.8, "profiles": ["default", "lab"]},
    {"id": "gpu", "title": "GPU node", "gpu": True, "max_gpus": 1, "gres": "gpu:{}", "max_cpus": 4,
     "max_memory_gb": 3.8, "profiles": ["default"]},
]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):  # noqa: ANN001, ANN201
    running = start_slurm(tmp_path_factory.mktemp("slurm"))
    yield running
    stop_slurm(running)


@pytest.fixture(scope="module")
def hub(slurm, tmp_path_factory):  # noqa: ANN001, ANN201
    tester = "tester-" + "0" * 24
    running = start_moss_hub(tmp_path_factory.mktemp("moss-hub"), slurm, f'''
c.JupyterHub.services.append({{"name": "tester", "api_token": "{tester}"}})
c.JupyterHub.load_roles.append({{"name": "tester", "scopes": ["access:servers", "read:users"], "services": ["tester"]}})
''')
    running.tester_token = tester
    yield running
    stop_hub(running)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("data")
    folder = root / "visitor" / "ma1234" / "ID10"  # the folder of ID10's dataset, as ESRF lays them out
    folder.mkdir(parents=True)
    (folder / "scan-0001.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    return root


def register_esrf(broker, hub, data_root: Path) -> None:  # noqa: ANN001
    """ESRF's hub as docs/operators.md registers it (plus ILL's, for the plain-hub tests run here)."""
    reg = broker.registry
    reg.create(ADMIN, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR", "accepted_issuers": ["esrf-idp"]})
    reg.create(ADMIN, KINDS.service, {
        "id": "esrf-hub", "facility_id": "esrf", "kind": "jupyterhub", "title": "ESRF JupyterHub",
        "base_url": hub.url, "launch_mode": "api", "credential": hub.token,
        "capabilities": {"partitions": PARTITIONS, "profiles": ["default", "lab"], "interfaces": ["jupyterlab", "notebook"]},
        "connector_config": {
            "flavour": "moss", "spawner": "jupyterhub_moss.MOSlurmSpawner", "start_timeout_seconds": 90,
            "slow_spawn_timeout_seconds": SLOW_SPAWN_SECONDS,
            "environments": {"default": {"path": BIN}, "lab": {"path": BIN}},
            "user_options": {"runtime": "1:00:00", "output": "/dev/null", "default_url": "/lab"},
            "data_path_template": f"{data_root}/visitor/{{proposal}}/{{instrument}}",
            "username_claim": "preferred_username", "username_pattern": USERNAME_PATTERN}})


@pytest.fixture
def broker(hub, tmp_path, data_root):  # noqa: ANN001, ANN201
    from tests.test_launch import DATASET, EMBARGOED

    built = build_broker(make_settings(tmp_path))
    register_esrf(built, hub, data_root)
    reg = built.registry
    for fid, issuers in (("ill", ["ill-idp"]), ("egi", ["umbrellaid"])):
        reg.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR", "accepted_issuers": issuers})
    reg.create(ADMIN, KINDS.service, {  # ILL's hub is the same moss hub here, registered with moss's vocabulary
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub", "base_url": hub.url,
        "launch_mode": "api", "credential": hub.token, "capabilities": {"max_cpus": 8, "partitions": PARTITIONS},
        "connector_config": {"flavour": "moss", "start_timeout_seconds": 90, "environments": {"default": {"path": BIN}},
                             "username_pattern": USERNAME_PATTERN}})
    built.index.upsert([ID10, DATASET, EMBARGOED])
    built.index.commit()
    yield built
    built.launch_runner.wait_for_steps()
    built.index.close()


@pytest.fixture(autouse=True)
def no_job_left_behind(slurm):  # noqa: ANN001, ANN201
    """A test that failed half way leaves its jobs holding the node's memory: cancelled before the next test."""
    yield
    if slurm.jobs():
        slurm.run("scancel", "--full", "--user=root")
        slurm_jobs_gone(slurm)


def esrf_person(broker, name: str, username: str | None):  # noqa: ANN001, ANN201
    """Someone signed in at ESRF's IdP, which sent ``preferred_username`` (or none)."""
    created = broker.people.create(ADMIN, {"display_name": name, "identities": [
        {"issuer": "esrf-idp", "subject": f"{name}@esrf.fr"}]})
    broker.people.remember_claims("esrf-idp", f"{name}@esrf.fr", {"preferred_username": username} if username else
                                  {"email": f"{name}@esrf.fr"})
    return Principal(f"person:{created['id']}"), created["id"]


def advance_until(broker, done, seconds: float = 60, describe=None):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        broker.launch_runner.advance()
        result = done()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"not reached within {seconds} s: {describe() if describe else ''}")


def lost_by_batchspawner(hub, job_id: str) -> bool:  # noqa: ANN001
    """Whether batchspawner 1.3 forgot this job: a start interrupted while its status query runs has the
    query killed (its bare ``except:`` takes the cancellation), reads the killed squeue as "job gone",
    clears the job id, and the hub's stop that follows cancels nothing: the Slurm job stays behind (the
    family of jupyterhub/batchspawner#315). The hub's log shows these two lines for it."""
    lines = hub.log(f"job {job_id}", f"Job {job_id} ").splitlines()
    return (any(line.endswith(f"Error querying job {job_id}") for line in lines)
            and any(f"Job {job_id} neither pending nor running" in line for line in lines))


def test_a_job_is_taken_as_lost_by_batchspawner_only_on_its_own_two_log_lines(tmp_path) -> None:
    """The lines as batchspawner 1.3 logged them in the run that failed CI (job 6 lost; 1 cancelled)."""
    from tests.jupyterhub_fixture import RunningHub

    (tmp_path / "hub.log").write_text(
        "[I 2026-12-03 17:24:12.470 JupyterHub batchspawner:469] Stopping server job 1\n"
        "[E 2026-12-03 17:24:15.658 JupyterHub batchspawner:321] Error querying job 6\n"
        "[W 2026-12-03 17:24:15.658 JupyterHub batchspawner:432] Job 6 neither pending nor running.\n"
        "[E 2026-12-03 17:24:16.001 JupyterHub batchspawner:321] Error querying job 7\n")
    hub = RunningHub("http://127.0.0.1:1", "t", None, tmp_path)  # type: ignore[arg-type] - no process: the log only
    assert [j for j in ("1", "6", "7", "60") if lost_by_batchspawner(hub, j)] == ["6"]


def cancel_lost_jobs(slurm, hub, job_ids) -> set[str]:  # noqa: ANN001
    """The jobs of ``job_ids`` batchspawner lost (see above), cancelled here with a warning: the broker asked
    the hub to stop them and the hub answered that it did."""
    lost = {j for j in job_ids if lost_by_batchspawner(hub, j)}
    for job in lost:
        warnings.warn(f"batchspawner lost Slurm job {job} when the hub interrupted its start (upstream race); "
                      "the test cancels it", stacklevel=2)
        slurm.run("scancel", job)
    return lost


def slurm_jobs_gone(slurm, seconds: float = 20, hub=None) -> bool:  # noqa: ANN001
    """Every job gone within ``seconds``; with ``hub``, but for those batchspawner lost (cancelled here)."""
    deadline = time.monotonic() + seconds
    while slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {j["id"] for j in slurm.jobs()}
    if hub is not None and left and not left - cancel_lost_jobs(slurm, hub, left):
        return slurm_jobs_gone(slurm, 10)
    return not left


def test_a_dataset_launched_through_the_api_opens_its_folder_in_a_slurm_job(broker, hub, slurm, data_root):  # noqa: ANN001
    folder = data_root / "visitor" / "ma1234" / "ID10"
    zoe, zoe_id = esrf_person(broker, "Zoe Smith", "zsmith")  # a subject with a space: the claim is the name
    token = broker.people.issue_token(ADMIN, zoe_id, {"name": "t"})["token"]
    client = create_app(broker=broker).test_client()
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": "moss-1"}
    created = client.post("/api/v1/launches", headers=auth,
                          json={"dataset": ID10.pid, "resources": {"cpus": 2, "memory_gb": 0.5, "profile": "lab"}})
    assert created.status_code == 201, created.text
    launch = created.json()
    assert launch["service_id"] == "esrf-hub"
    assert [c.get("partition") for c in launch["decision"] if c["fits"]] == ["cpu"]  # the GPU node is kept free

    done = advance_until(broker, lambda: (lambda x: x if x["state"] in ("ready", "failed") else None)(
        client.get(f"/api/v1/launches/{launch['id']}", headers=auth).json()), 90)
    assert done["state"] == "ready", done
    assert done["url"].startswith(f"{hub.url}/user/zsmith/pb-")

    server = hub.api("/users/zsmith").json()["servers"]
    options = next(iter(server.values()))["user_options"]
    assert options["partition"] == "cpu" and options["nprocs"] == 2 and options["memory"] == "512M"
    assert options["ngpus"] == 0 and options["gres"] == "" and options["environment_id"] == "lab"
    assert options["root_dir"] == str(folder) and "PANOSC_DATASET_PID=10.15151/ESRF-ES-1234" in options["prologue"]
    (job,) = slurm.jobs()
    assert job["state"] == "RUNNING"

    listing = requests.get(done["url"].rstrip("/") + "/api/contents", timeout=10,
                           headers={"Authorization": f"token {hub.tester_token}"})
    assert listing.status_code == 200, listing.text
    assert [item["name"] for item in listing.json()["content"]] == ["scan-0001.h5"]

    stopped = client.delete(f"/api/v1/launches/{launch['id']}", headers=auth).json()
    assert stopped["state"] == "stopped"
    assert slurm_jobs_gone(slurm), slurm.jobs()


@pytest.mark.parametrize("resources, limit", [
    ({"partition": "cpu", "gpu": True}, "partition cpu has no GPU"),
    ({"gpus": 2}, "partition gpu has at most 1 GPU;"),
    ({"memory_gb": 64}, "partition cpu has at most 3.8 GB of memory"),
    ({"cpus": 16, "memory_gb": 2}, "partition cpu has at most 4 CPUs"),
    ({"profile": "lab", "gpu": True}, "partition gpu offers default, not lab"),
])
def test_a_request_no_partition_can_satisfy_is_refused_before_sending_naming_the_limit(broker, hub, resources, limit):  # noqa: ANN001
    ann, _ = esrf_person(broker, f"ann{len(limit)}", f"ann{len(limit)}")
    with pytest.raises(Conflict) as refused:
        broker.launches.create(ann, "k", {"dataset": ID10.pid, "resources": resources})
    reason = next(e.message for e in refused.value.errors if e.field == "esrf-hub")
    assert limit in reason and "what fits: cpu up to 4 CPUs, 3.8 GB, no GPU; gpu up to 4 CPUs, 3.8 GB, 1 GPU" in reason
    assert hub.api(f"/users/ann{len(limit)}").status_code == 404  # nothing reached the hub


@pytest.mark.parametrize("claims, reason", [
    ({}, "knows people by the 'preferred_username' claim"),
    ({"preferred_username": "Zoe Smith"}, "your user name 'zoe smith' is not one ESRF JupyterHub takes"),
])
def test_a_person_the_hub_cannot_name_is_refused_before_sending(broker, claims, reason):  # noqa: ANN001
    created = broker.people.create(ADMIN, {"display_name": "Zed", "identities": [{"issuer": "esrf-idp",
                                                                                  "subject": "Zed Z@esrf.fr"}]})
    broker.people.remember_claims("esrf-idp", "Zed Z@esrf.fr", claims)
    with pytest.raises(Conflict) as refused:
        broker.launches.create(Principal(f"person:{created['id']}"), "k", {"dataset": ID10.pid})
    assert reason in next(e.message for e in refused.value.errors if e.field == "esrf-hub")


def test_a_gpu_launch_goes_to_the_gpu_partition_with_its_gres(broker, hub, slurm):  # noqa: ANN001
    gus, _ = esrf_person(broker, "gus", "gus")
    launch, _ = broker.launches.create(gus, "gpu", {"dataset": ID10.pid, "resources": {"gpu": True, "memory_gb": 1}})
    assert [c.get("partition") for c in launch["decision"] if c["fits"]] == ["gpu"]
    done = advance_until(broker, lambda: (lambda x: x if x["state"] in ("ready", "failed") else None)(
        broker.launches.get(gus, launch["id"])), 60)
    assert done["state"] == "ready", done
    options = next(iter(hub.api("/users/gus").json()["servers"].values()))["user_options"]
    assert (options["partition"], options["ngpus"], options["gres"], options["memory"]) == ("gpu", 1, "gpu:1", "1G")
    assert slurm.run("squeue", "--noheader", "--format=%P %b").split() == ["gpu", "gres:gpu:1"]
    broker.launches.cancel(gus, launch["id"])
    assert slurm_jobs_gone(slurm)


def test_five_launches_at_once_end_ready_or_waiting_in_slurm_and_a_cancel_removes_the_job(broker, hub, slurm):  # noqa: ANN001
    """3 sessions of 1 GB fit the node's 3900 MB: the 4th and 5th Slurm jobs wait for memory (the hub holds
    each start for its slow-spawn timeout without stalling the others); the 5th first waits in the
    broker's admission queue (4 starts at a time)."""
    eve, _ = esrf_person(broker, "eve", "eve")
    datasets = [Dataset(pid=f"esrf/run-{n}", facility="esrf", title=f"Run {n}", source="esrf-search") for n in range(5)]
    broker.index.upsert(datasets)
    broker.index.commit()
    launches = [broker.launches.create(eve, f"five-{n}", {"dataset": d.pid, "resources": {"memory_gb": 1}})[0]
                for n, d in enumerate(datasets)]

    def settled():  # noqa: ANN202
        shown = [broker.launches.get(eve, x["id"]) for x in launches]
        return shown if sorted(x["state"] for x in shown) == ["ready"] * 3 + ["waiting"] * 2 else None

    shown = advance_until(broker, settled, 90, lambda: [
        (broker.launches.get(eve, x["id"])["state"], [e["message"] for e in broker.launches.events(eve, x["id"])])
        for x in launches] + [slurm.jobs()])
    assert sorted(j["state"] for j in slurm.jobs()) == ["PENDING", "PENDING", "RUNNING", "RUNNING", "RUNNING"]
    events = {x["id"]: broker.launches.events(eve, x["id"]) for x in launches}
    # the fifth waited for a start slot (4 at a time), told its place, before it was sent
    assert "queued: next to start" in [e["message"] for e in events[launches[4]["id"]]]
    waiting = [x for x in shown if x["state"] == "waiting"]
    for x in waiting:
        assert x["progress"] == "waiting in the facility's queue (the batch job is pending)"
        assert sum("facility's queue" in e["message"] for e in events[x["id"]]) == 1  # batchspawner repeats it
    # starts run side by side (one the hub holds for its slow-spawn timeout stalls no other): the first
    # four were all sent before the hub answered any of them
    sent = [e["id"] for x in launches[:4] for e in events[x["id"]] if e["state"] == "submitted"]
    answered = [e["id"] for evs in events.values() for e in evs if e["state"] in ("starting", "ready", "waiting")]
    assert len(sent) == 4 and max(sent) < min(answered), (sent, answered)
    assert all(not e["message"].startswith("trouble") for evs in events.values() for e in evs)
    assert broker.launch_runner.bounds.bound("esrf-hub", 4) == 4  # nothing here was overload

    # cancel during the start: final at once, the Slurm job is cancelled, no late "ready" revives it
    before = {j["id"] for j in slurm.jobs() if j["state"] == "PENDING"}
    cancelled = broker.launches.cancel(eve, waiting[0]["id"])
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 20
    while len([j for j in slurm.jobs() if j["state"] == "PENDING"]) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    gone = before - {j["id"] for j in slurm.jobs()}
    lost = set() if gone else cancel_lost_jobs(slurm, hub, before)
    assert len(gone | lost) == 1, (
        slurm.jobs(), [(e["state"], e["message"]) for e in broker.launches.events(eve, waiting[0]["id"])],
        hub.log("Interrupting", "Stopping", "Cancelling", "DELETE", "stop", "querying"))
    for _ in range(5):
        broker.launch_runner.advance()
        time.sleep(0.3)
    broker.launch_runner.wait_for_steps()
    assert broker.launches.get(eve, waiting[0]["id"])["state"] == "cancelled"
    assert [e["state"] for e in broker.launches.events(eve, waiting[0]["id"])].count("ready") == 0
    with ThreadPoolExecutor(5) as pool:  # stopping a Slurm job takes a second or two: all at once
        list(pool.map(lambda x: broker.launches.cancel(eve, x["id"]), launches))
    assert slurm_jobs_gone(slurm, hub=hub), (slurm.jobs(), hub.log("Interrupting", "Stopping", "Cancelling", "querying"))


def test_a_start_the_site_refuses_fails_alone_and_does_not_lower_admission(broker, hub, slurm):  # noqa: ANN001
    """Slurm (EnforcePartLimits) refuses 5 hours on a 4-hour partition whose limit the operator did not
    register: that launch fails with Slurm's reason; the service is not overloaded."""
    fay, _ = esrf_person(broker, "fay", "fay")
    broker.index.upsert([Dataset(pid="esrf/run-1", facility="esrf", title="Run 1", source="esrf-search")])
    broker.index.commit()
    launches = [broker.launches.create(fay, f"long-{n}", {"dataset": ID10.pid if n == 0 else f"esrf/run-{n}",
                                                          "resources": {"runtime_hours": 5}})[0] for n in range(2)]
    for launch in launches:
        done = advance_until(broker, lambda x=launch: (lambda y: y if y["state"] in ("ready", "failed") else None)(
            broker.launches.get(fay, x["id"])), 60)
        assert done["state"] == "failed" and "time limit" in done["error"].lower(), done
    assert broker.launch_runner.bounds.bound("esrf-hub", 4) == 4
    assert not slurm.jobs()
