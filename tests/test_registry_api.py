"""The operator API: CRUD of every registry object, concurrency, validation, secrets, permissions.
Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import ADMIN

SECRET = "hub-service-token-NEVER-SHOWN-93f1"


def facility(**over):  # noqa: ANN003, ANN201
    return {"id": "ill", "name": "Institut Laue-Langevin", "country": "FR", "ror_id": "01xtjs520",
            "homepage": "https://www.ill.eu", "contact_email": "ops@ill.example", "accepted_issuers": ["umbrellaid"],
            **over}


def service(**over):  # noqa: ANN003, ANN201
    return {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL JupyterHub",
            "base_url": "https://jupyter.ill.example", "launch_mode": "api",
            "capabilities": {"max_cpus": 8, "gpu": False, "partitions": [{"id": "x86", "max_cpus": 8}]},
            "connector_config": {"spawner": "jupyterhub_moss"}, **over}


@pytest.fixture
def ill(client):  # noqa: ANN001, ANN201
    response = client.post("/api/v1/facilities", json=facility(), headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def problem_fields(response) -> set[str]:  # noqa: ANN001
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code
    return {e["field"] for e in body.get("errors", [])}


# -- CRUD of each kind -------------------------------------------------------------------------

def test_facility_lifecycle_create_read_update_delete(client):  # noqa: ANN001
    created = client.post("/api/v1/facilities", json=facility(), headers=ADMIN)
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    assert created.json()["ror_id"] == "https://ror.org/01xtjs520"  # normalised

    read = client.get("/api/v1/facilities/ill")
    assert read.json()["name"] == "Institut Laue-Langevin" and read.json()["version"] == 1

    patched = client.patch("/api/v1/facilities/ill", json={"name": "ILL"}, headers={**ADMIN, "If-Match": '"1"'})
    assert patched.status_code == 200 and patched.json()["name"] == "ILL" and patched.json()["version"] == 2
    assert patched.json()["country"] == "FR"  # untouched fields stay

    replaced = client.put("/api/v1/facilities/ill", json={"id": "ill", "name": "ILL Grenoble", "country": "FR",
                                                          "version": 2}, headers=ADMIN)
    assert replaced.status_code == 200
    assert replaced.json()["homepage"] is None  # a replacement clears what it leaves out
    assert client.delete("/api/v1/facilities/ill", headers={**ADMIN, "If-Match": '"3"'}).status_code == 204
    assert client.get("/api/v1/facilities/ill").status_code == 404


def test_service_lifecycle_with_eosc_entry_and_filters(client, ill):  # noqa: ANN001
    created = client.post("/api/v1/services", json=service(), headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["health"]["status"] == "unknown" and body["eosc"]["status"] == "not-registered"

    entry = client.post("/api/v1/eosc-entries", json={"service_id": "ill-hub", "status": "in-progress",
                                                      "resource_id": "21.T15999/ill-hub"}, headers=ADMIN)
    assert entry.status_code == 201, entry.text
    assert client.get("/api/v1/services/ill-hub").json()["eosc"]["status"] == "in-progress"
    assert client.get("/api/v1/services?eosc_status=in-progress").json()["total"] == 1
    assert client.get("/api/v1/services?eosc_status=registered").json()["total"] == 0
    assert client.get("/api/v1/eosc-entries?facility=ill").json()["total"] == 1

    updated = client.patch("/api/v1/eosc-entries/ill-hub", json={"status": "registered", "version": 1},
                           headers=ADMIN)
    assert updated.status_code == 200 and updated.json()["status"] == "registered"

    assert client.delete("/api/v1/services/ill-hub", headers={**ADMIN, "If-Match": '"1"'}).status_code == 204
    assert client.get("/api/v1/eosc-entries/ill-hub").status_code == 404  # removed with its service


def test_search_endpoint_lifecycle(client, ill):  # noqa: ANN001
    created = client.post("/api/v1/search-endpoints", json={
        "facility_id": "ill", "kind": "panosc-search-api", "base_url": "https://search.ill.example",
        "harvest_schedule": "0 3 * * *"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "ill-panosc-search-api"  # generated from facility and kind
    patched = client.patch("/api/v1/search-endpoints/ill-panosc-search-api",
                           json={"harvest_schedule": None}, headers={**ADMIN, "If-Match": 'W/"1"'})
    assert patched.status_code == 200 and patched.json()["harvest_schedule"] is None
    assert client.get("/api/v1/search-endpoints?kind=panosc-search-api").json()["total"] == 1
    assert client.delete("/api/v1/search-endpoints/ill-panosc-search-api",
                         headers={**ADMIN, "If-Match": '"2"'}).status_code == 204


def test_list_paginates_in_id_order_with_total(client, ill):  # noqa: ANN001
    for n in range(7):
        assert client.post("/api/v1/services", json=service(id=f"svc-{n}"), headers=ADMIN).status_code == 201
    first = client.get("/api/v1/services?limit=3&offset=0").json()
    second = client.get("/api/v1/services?limit=3&offset=3").json()
    assert first["total"] == 7 and [s["id"] for s in first["items"]] == ["svc-0", "svc-1", "svc-2"]
    assert [s["id"] for s in second["items"]] == ["svc-3", "svc-4", "svc-5"]
    assert client.get("/api/v1/services?facility=esrf").json()["total"] == 0


# -- concurrency -------------------------------------------------------------------------------

def test_stale_if_match_is_refused_and_the_newer_data_kept(client, ill):  # noqa: ANN001
    first = client.patch("/api/v1/facilities/ill", json={"name": "Writer A"}, headers={**ADMIN, "If-Match": '"1"'})
    assert first.status_code == 200
    stale = client.patch("/api/v1/facilities/ill", json={"name": "Writer B"}, headers={**ADMIN, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert "version" in problem_fields(stale)
    assert client.get("/api/v1/facilities/ill").json()["name"] == "Writer A"


def test_stale_body_version_is_a_conflict(client, ill):  # noqa: ANN001
    client.patch("/api/v1/facilities/ill", json={"name": "A", "version": 1}, headers=ADMIN)
    stale = client.put("/api/v1/facilities/ill", json={**facility(), "version": 1}, headers=ADMIN)
    assert stale.status_code == 409
    assert client.get("/api/v1/facilities/ill").json()["name"] == "A"


def test_update_without_a_version_is_refused(client, ill):  # noqa: ANN001
    response = client.patch("/api/v1/facilities/ill", json={"name": "X"}, headers=ADMIN)
    assert response.status_code == 428
    assert client.delete("/api/v1/facilities/ill", headers=ADMIN).status_code == 428
    assert client.get("/api/v1/facilities/ill").json()["name"] == "Institut Laue-Langevin"


# -- bad input: each a 4xx problem naming the field, never a 500, nothing lost ------------------

@pytest.mark.parametrize("body, status, field", [
    ({**service(), "unexpected": 1}, 400, "unexpected"),
    ({**service(), "capabilities": {"max_cpus": "many"}}, 400, "capabilities.max_cpus"),
    ({**service(), "capabilities": {"max_cpus": 0}}, 400, "capabilities.max_cpus"),
    ({**service(), "kind": "mainframe"}, 400, "kind"),
    ({**service(), "base_url": "ftp://files.ill.example"}, 422, "base_url"),
    ({**service(), "base_url": "not a url"}, 422, "base_url"),
    ({**service(), "base_url": "https://user:pw@hub.ill.example"}, 422, "base_url"),
    ({**service(), "base_url": "http://10.0.0.5/hub"}, 422, "base_url"),
    ({**service(), "facility_id": "atlantis"}, 422, "facility_id"),
    ({**service(), "connector_config": {"sapwner": "moss"}}, 422, "connector_config.sapwner"),
    ({**service(), "connector_config": {"start_timeout_seconds": 1}}, 422, "connector_config.start_timeout_seconds"),
    ({**service(), "id": "Not A Slug"}, 400, "id"),
    ({k: v for k, v in service().items() if k != "title"}, 400, "title"),
])
def test_bad_service_input_names_the_field(client, ill, body, status, field):  # noqa: ANN001
    response = client.post("/api/v1/services", json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert field in problem_fields(response)
    assert client.get("/api/v1/services").json()["total"] == 0


@pytest.mark.parametrize("body, field", [
    ({"id": "x", "name": "X", "country": "France"}, "country"),
    ({"id": "x", "name": "X", "country": "FR", "ror_id": "not-a-ror"}, "ror_id"),
    ({"id": "x", "name": "X", "country": "FR", "contact_email": "nobody"}, "contact_email"),
    ({"id": "x", "name": "X", "country": "FR", "homepage": "javascript:alert(1)"}, "homepage"),
])
def test_bad_facility_input_names_the_field(client, body, field):  # noqa: ANN001
    response = client.post("/api/v1/facilities", json=body, headers=ADMIN)
    assert 400 <= response.status_code < 500
    assert field in problem_fields(response)


def test_malformed_json_is_a_400_problem(client):  # noqa: ANN001
    response = client.post("/api/v1/facilities", content=b'{"id": "x", ', headers={
        **ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_non_object_body_is_a_400_problem(client):  # noqa: ANN001
    response = client.post("/api/v1/facilities", json=[1, 2], headers=ADMIN)
    assert response.status_code == 400
    problem_fields(response)


def test_duplicate_id_is_a_409_and_the_first_is_kept(client, ill):  # noqa: ANN001
    response = client.post("/api/v1/facilities", json=facility(name="Impostor"), headers=ADMIN)
    assert response.status_code == 409 and "id" in problem_fields(response)
    assert client.get("/api/v1/facilities/ill").json()["name"] == "Institut Laue-Langevin"


def test_oversized_body_is_a_413_problem(client):  # noqa: ANN001
    huge = json.dumps(facility(name="x" * 2_000_000))
    response = client.post("/api/v1/facilities", content=huge, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


def test_oversized_chunked_body_without_length_is_refused(client):  # noqa: ANN001
    def chunks():  # noqa: ANN202
        for _ in range(40):
            yield b" " * 65536

    response = client.post("/api/v1/facilities", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"})
    # connexion refuses a required body sent without Content-Length before reading it (400); when a
    # body is read, the size cap answers 413. Either way: a problem, and nothing stored.
    assert response.status_code in (400, 413)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/v1/facilities").json()["total"] == 0


def test_changing_the_id_in_an_update_is_refused(client, ill):  # noqa: ANN001
    response = client.patch("/api/v1/facilities/ill", json={"id": "ill2"}, headers={**ADMIN, "If-Match": '"1"'})
    assert response.status_code == 422 and "id" in problem_fields(response)


def test_patch_cannot_leave_an_invalid_object(client, ill):  # noqa: ANN001
    client.post("/api/v1/services", json=service(), headers=ADMIN)
    response = client.patch("/api/v1/services/ill-hub", json={"base_url": None}, headers={**ADMIN, "If-Match": '"1"'})
    assert response.status_code == 422 and "base_url" in problem_fields(response)
    planned = client.patch("/api/v1/services/ill-hub", json={"base_url": None, "lifecycle": "planned"},
                           headers={**ADMIN, "If-Match": '"1"'})
    assert planned.status_code == 200 and planned.json()["base_url"] is None


def test_deleting_a_facility_with_services_is_a_conflict(client, ill):  # noqa: ANN001
    client.post("/api/v1/services", json=service(), headers=ADMIN)
    response = client.delete("/api/v1/facilities/ill", headers={**ADMIN, "If-Match": '"1"'})
    assert response.status_code == 409 and "service" in response.json()["detail"]
    assert client.get("/api/v1/services/ill-hub").status_code == 200


def test_unknown_list_filter_and_bad_paging_are_400(client):  # noqa: ANN001
    assert client.get("/api/v1/services?colour=red").status_code == 400
    assert client.get("/api/v1/services?limit=0").status_code == 400
    assert client.get("/api/v1/services?limit=abc").status_code == 400
    assert client.get("/api/v1/services?status=purple").status_code == 400


# -- secrets -----------------------------------------------------------------------------------

def test_credential_is_write_only_encrypted_and_never_logged(client, broker, ill, caplog):  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    created = client.post("/api/v1/services", json=service(credential=SECRET), headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["has_credential"] is True
    client.patch("/api/v1/services/ill-hub", json={"credential": SECRET + "-rotated"},
                 headers={**ADMIN, "If-Match": '"1"'})
    texts = [client.get("/api/v1/services/ill-hub").text, client.get("/api/v1/services").text,
             client.get("/api/v1/audit", headers=ADMIN).text, caplog.text]
    assert all(SECRET not in t for t in texts)
    audit = client.get("/api/v1/audit?object_id=ill-hub", headers=ADMIN).json()["items"]
    assert "credential" in audit[0]["changed"]  # the rotation is audited, the value is not

    with broker.store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT credential_encrypted FROM compute_services").scalar_one()
    assert SECRET not in stored
    assert broker.registry.credential("ill-hub") == SECRET + "-rotated"


def test_credential_survives_a_replacement_without_it_and_null_removes_it(client, broker, ill):  # noqa: ANN001
    client.post("/api/v1/services", json=service(credential=SECRET), headers=ADMIN)
    replaced = client.put("/api/v1/services/ill-hub", json={**service(title="New title"), "version": 1}, headers=ADMIN)
    assert replaced.json()["has_credential"] is True
    removed = client.patch("/api/v1/services/ill-hub", json={"credential": None, "version": 2}, headers=ADMIN)
    assert removed.json()["has_credential"] is False
    assert broker.registry.credential("ill-hub") is None


# -- permissions and audit ---------------------------------------------------------------------

def test_writes_need_the_admin_token(client):  # noqa: ANN001
    assert client.post("/api/v1/facilities", json=facility()).status_code == 401
    wrong = client.post("/api/v1/facilities", json=facility(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/v1/facilities").json()["total"] == 0
    assert client.get("/api/v1/audit").status_code == 401


def test_every_write_is_audited_with_before_and_after(client, ill):  # noqa: ANN001
    client.patch("/api/v1/facilities/ill", json={"name": "ILL"}, headers={**ADMIN, "If-Match": '"1"'})
    events = client.get("/api/v1/audit?object_type=facility", headers=ADMIN).json()["items"]
    assert [e["action"] for e in events] == ["update", "create"]
    assert events[0]["actor"] == "admin-token"
    assert events[0]["before"]["name"] == "Institut Laue-Langevin" and events[0]["after"]["name"] == "ILL"
    assert events[0]["changed"] == ["name"]


def test_an_unchanged_update_writes_nothing(client, ill):  # noqa: ANN001
    same = client.patch("/api/v1/facilities/ill", json={"name": "Institut Laue-Langevin"},
                        headers={**ADMIN, "If-Match": '"1"'})
    assert same.json()["version"] == 1
    assert client.get("/api/v1/audit", headers=ADMIN).json()["total"] == 1
