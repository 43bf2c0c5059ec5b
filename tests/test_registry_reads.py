"""Registry and catalogue reads: answered from bodies kept per process, never stale — a write from
another process (an operator's edit, a health round, an EOSC sync) is seen by the next read — with
ETags answered by 304 Not Modified, and each list read in one query."""
from __future__ import annotations

import pytest
from sqlalchemy import event, update

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from registry.models import ComputeService, EoscEntry
from tests.conftest import ADMIN

ACTOR = Principal("test", admin=True)


@pytest.fixture
def ill(broker):  # noqa: ANN001, ANN201
    broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    broker.registry.create(ACTOR, KINDS.service, {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub",
                                                  "title": "ILL hub", "base_url": "https://hub.ill.example"})
    return broker


def other_process(broker):  # noqa: ANN001, ANN201
    """A second broker on the same database, as another replica or the worker would be."""
    return build_broker(broker.settings, run_migrations=False)


def mark_down(broker, service_id: str) -> None:  # noqa: ANN001
    """What a health round does: a plain UPDATE that leaves the version alone."""
    with broker.store.session() as session:
        session.execute(update(ComputeService).where(ComputeService.id == service_id)
                        .values(health_status="down").execution_options(synchronize_session=False))


@pytest.mark.parametrize("path", ["/api/v1/services/ill-hub", "/api/v1/services?facility=ill",
                                  "/api/v1/facilities", "/api/v1/facilities/ill", "/api/v1/catalogue",
                                  "/api/v1/catalogue?format=csv"])
def test_a_repeated_read_naming_its_etag_gets_304_and_no_body(ill, client, path):  # noqa: ANN001
    first = client.get(path)
    assert first.status_code == 200 and first.headers["ETag"].startswith('"')
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": '"other", ' + first.headers["ETag"]}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_a_health_change_made_by_another_process_changes_the_etag_and_is_seen_at_once(ill, client):  # noqa: ANN001
    read = client.get("/api/v1/services/ill-hub")
    listed = client.get("/api/v1/catalogue")
    assert read.json()["health"]["status"] == "unknown" and read.json()["version"] == 1

    mark_down(other_process(ill), "ill-hub")

    after = client.get("/api/v1/services/ill-hub", headers={"If-None-Match": read.headers["ETag"]})
    assert after.status_code == 200 and after.json()["health"]["status"] == "down"
    assert after.json()["version"] == 1 and after.headers["ETag"] != read.headers["ETag"]
    catalogue = client.get("/api/v1/catalogue", headers={"If-None-Match": listed.headers["ETag"]})
    assert catalogue.status_code == 200 and catalogue.json()["items"][0]["health"]["status"] == "down"
    # the version part is what If-Match compares: a health round does not make an operator's edit stale
    patched = client.patch("/api/v1/services/ill-hub", json={"title": "ILL JupyterHub"},
                           headers={**ADMIN, "If-Match": after.headers["ETag"]})
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"].startswith('"2.')


def test_lists_see_objects_another_process_creates_and_deletes(ill, client):  # noqa: ANN001
    assert client.get("/api/v1/services").json()["total"] == 1
    other = other_process(ill)
    other.registry.create(ACTOR, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                 "title": "ILL VISA", "base_url": "https://visa.ill.example"})
    assert [s["id"] for s in client.get("/api/v1/services").json()["items"]] == ["ill-hub", "ill-visa"]
    assert client.get("/api/v1/services/ill-visa").status_code == 200
    from broker.registry_service import Precondition

    other.registry.delete(ACTOR, KINDS.service, "ill-visa", Precondition(1, from_header=True))
    assert client.get("/api/v1/services").json()["total"] == 1
    assert client.get("/api/v1/services/ill-visa").status_code == 404


def test_an_eosc_sync_written_by_another_process_is_seen_by_the_next_read(ill, client):  # noqa: ANN001
    ill.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "ill-hub"})
    before = client.get("/api/v1/eosc-entries/ill-hub")
    with other_process(ill).store.session() as session:
        session.execute(update(EoscEntry).where(EoscEntry.service_id == "ill-hub")
                        .values(onboarding_status="approved").execution_options(synchronize_session=False))
    after = client.get("/api/v1/eosc-entries/ill-hub", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.json()["catalogue"]["onboarding_status"] == "approved"


def test_a_compressed_list_is_revalidated_with_the_tag_it_was_sent_with(ill, client):  # noqa: ANN001
    first = client.get("/api/v1/services", headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip" and first.headers["ETag"].endswith(':gzip"')
    again = client.get("/api/v1/services", headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_bad_list_parameters_are_still_refused_after_a_good_read_was_kept(ill, client):  # noqa: ANN001
    assert client.get("/api/v1/services?limit=5").status_code == 200
    refused = client.get("/api/v1/services?limit=0")
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/problem+json")


def test_each_list_and_the_catalogue_are_read_in_one_query(ill):  # noqa: ANN001
    for n in range(3):
        ill.registry.create(ACTOR, KINDS.service, {"id": f"ill-desk-{n}", "facility_id": "ill", "kind": "visa",
                                                   "title": f"Desk {n}", "base_url": "https://visa.ill.example"})
        ill.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": f"ill-desk-{n}"})
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(ill.store.engine, "before_cursor_execute", count)
    try:
        page = ill.registry.list(KINDS.service, {}, limit=2, offset=1)
        assert page.total == 4 and [i["id"] for i in page.items] == ["ill-desk-1", "ill-desk-2"]
        assert page.items[0]["eosc"]["status"] == "not-registered" or page.items[0]["eosc"]
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1, statements
        statements.clear()
        assert len(ill.catalogue.services()) == 4
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1, statements
        statements.clear()
        past = ill.registry.list(KINDS.service, {}, limit=2, offset=10)  # no row carries the count: one more
        assert past.total == 4 and past.items == []
    finally:
        event.remove(ill.store.engine, "before_cursor_execute", count)


def test_every_registry_write_bumps_the_stamp_and_reads_do_not(ill):  # noqa: ANN001
    stamp = ill.store.registry_stamp()
    ill.registry.get(KINDS.service, "ill-hub")
    ill.registry.list(KINDS.facility)
    assert ill.store.registry_stamp() == stamp
    mark_down(ill, "ill-hub")
    assert ill.store.registry_stamp() == stamp + 1
    ill.registry.create(ACTOR, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR"})
    assert ill.store.registry_stamp() == stamp + 2


def test_a_replayed_read_is_the_same_answer_and_a_write_elsewhere_ends_the_replay(ill, client):  # noqa: ANN001
    first = client.get("/api/v1/services?limit=10", headers={"Accept-Encoding": "identity"})
    replayed = client.get("/api/v1/services?limit=10", headers={"Accept-Encoding": "identity"})
    assert replayed.content == first.content and replayed.headers["ETag"] == first.headers["ETag"]
    assert replayed.headers["x-request-id"] != first.headers["x-request-id"]  # each request keeps its own id
    assert all("registry-stamp" not in name.lower() for name in [*first.headers, *replayed.headers])
    assert client.get("/api/v1/services?limit=10", headers={"Accept-Encoding": "identity",
                                                            "If-None-Match": first.headers["ETag"]}).status_code == 304
    mark_down(other_process(ill), "ill-hub")
    after = client.get("/api/v1/services?limit=10", headers={"Accept-Encoding": "identity"})
    assert after.json()["items"][0]["health"]["status"] == "down" and after.headers["ETag"] != first.headers["ETag"]


def test_a_read_with_credentials_is_never_answered_from_a_replay(ill, client):  # noqa: ANN001
    assert client.get("/api/v1/services/ill-hub").status_code == 200
    refused = client.get("/api/v1/services/ill-hub", headers={"Authorization": "Bearer not-a-token"})
    plain = client.get("/api/v1/services/ill-hub", headers={"Authorization": f"{ADMIN['Authorization']}"})
    assert plain.status_code == 200 and refused.status_code in (200, 401)


def test_kept_answers_hold_one_stamp_refuse_older_builds_and_stay_within_their_bytes() -> None:
    from broker.api.reads import Kept

    kept = Kept(max_bytes=10)
    assert kept.get(3, ("a",)) is None
    kept.put(3, ("a",), "A", 4)
    kept.put(3, ("b",), "B", 4)
    assert kept.get(3, ("a",)) == "A"  # now the most recently used
    kept.put(3, ("c",), "C", 4)  # 12 bytes: the least recently used (b) goes
    assert kept.get(3, ("b",)) is None and kept.get(3, ("a",)) == "A" and kept.get(3, ("c",)) == "C"
    kept.put(2, ("d",), "D", 1)  # built under an older stamp: never kept
    assert kept.get(3, ("d",)) is None
    assert kept.get(4, ("a",)) is None and kept.get(4, ("c",)) is None  # a write happened: all gone
    kept.put(4, ("a",), "A2", 4)
    assert kept.get(1, ("a",)) is None and kept.get(4, ("a",)) is None  # the stamp went back (row emptied)
