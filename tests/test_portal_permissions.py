"""The portal asks the service layer who may edit what: a console page of an object the viewer may not
edit is a 404 (a foreign facility's console, another facility's object reached through one's own
console), its writes change nothing, and an admin opens every console."""
from __future__ import annotations

import pytest

from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.test_portal_pages import ADMIN, signed_in, site, token_of  # noqa: F401 - the shared fixture
from web.auth import COOKIE

FOREIGN_PAGES = (
    "/operator/esrf", "/operator/esrf/eosc-completeness", "/operator/esrf/services/new",
    "/operator/esrf/search-endpoints/new", "/operator/esrf/eosc-entries/new",
    "/operator/esrf/services/esrf-visa/edit", "/operator/esrf/search-endpoints/esrf-search/edit",
    "/operator/esrf/eosc-entries/esrf-visa/edit",
    # ESRF's objects reached through the ILL console, which the ILL operator may open
    "/operator/ill/services/esrf-visa/edit", "/operator/ill/search-endpoints/esrf-search/edit",
    "/operator/ill/eosc-entries/esrf-visa/edit",
    "/operator/ill/services/nope/edit",
)
OWN_PAGES = ("/operator/ill", "/operator/ill/eosc-completeness", "/operator/ill/services/new",
             "/operator/ill/services/ill-visa/edit", "/operator/ill/search-endpoints/ill-search/edit",
             "/operator/ill/eosc-entries/ill-visa/edit")


@pytest.fixture
def federation(site):  # noqa: ANN001, ANN201, F811
    broker, client = site
    for fid in ("ill", "esrf"):
        broker.registry.create(ADMIN, KINDS.search_endpoint, {"id": f"{fid}-search", "facility_id": fid,
                                                              "kind": "panosc-search-api",
                                                              "base_url": f"https://search.{fid}.example"})
        broker.registry.create(ADMIN, KINDS.eosc_entry, {"service_id": f"{fid}-visa"})
    return broker, client


def _versions(broker) -> dict[str, int]:  # noqa: ANN001
    return {f"{kind.name}:{item[kind.key]}": item["version"]
            for kind in (KINDS.facility, KINDS.service, KINDS.search_endpoint, KINDS.eosc_entry)
            for item in broker.registry.list(kind, limit=500).items}


def test_every_console_page_of_what_the_operator_may_not_edit_is_a_404(federation):  # noqa: ANN001
    broker, client = federation
    signed_in(broker, client, "olga", operator_of="ill")
    for path in OWN_PAGES:
        assert client.get(path).status_code == 200, path
    for path in FOREIGN_PAGES:
        page = client.get(path)
        assert page.status_code == 404, path
        assert "ESRF VISA" not in page.text and "search.esrf.example" not in page.text, path


def test_writes_through_another_facilitys_console_are_404_and_change_nothing(federation):  # noqa: ANN001
    broker, client = federation
    signed_in(broker, client, "olga", operator_of="ill")
    token = token_of(client.get("/operator/ill/services/new").text)
    before = _versions(broker)
    posts = {
        "/operator/esrf/services": {"id": "esrf-x", "title": "x", "kind": "visa", "base_url": "https://x.example"},
        "/operator/esrf/services/esrf-visa": {"title": "Mine", "kind": "visa", "version": "1"},
        "/operator/ill/services/esrf-visa": {"title": "Mine", "kind": "visa", "version": "1"},
        "/operator/ill/search-endpoints/esrf-search": {"kind": "panosc-search-api", "version": "1",
                                                       "base_url": "https://search.ill.example/x"},
        "/operator/ill/eosc-entries/esrf-visa": {"status": "registered", "version": "1"},
        "/operator/esrf/services/esrf-visa/delete": {"version": "1"},
        "/operator/ill/services/esrf-visa/delete": {"version": "1"},
        "/operator/ill/search-endpoints/esrf-search/delete": {"version": "1"},
        "/operator/ill/eosc-entries/esrf-visa/delete": {"version": "1"},
    }
    for path, data in posts.items():
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 404, path
    assert _versions(broker) == before
    # the same writes through the operator's own console go through
    assert client.post("/operator/ill/eosc-entries/ill-visa/delete",
                       data={"csrf_token": token, "version": "1"}, follow_redirects=False).status_code == 303


def test_an_admin_opens_every_facilitys_console(federation):  # noqa: ANN001
    broker, client = federation
    person = signed_in(broker, client, "ada")
    broker.people.grant(ADMIN, person["id"], {"role": "admin"})
    client.cookies.set(COOKIE, broker.auth.sessions.open(person["id"], "idp"))
    for path in (*OWN_PAGES, "/operator/esrf", "/operator/esrf/services/esrf-visa/edit",
                 "/operator/esrf/eosc-entries/esrf-visa/edit"):
        assert client.get(path).status_code == 200, path
    # an object of ESRF is still not reached through the ILL console
    assert client.get("/operator/ill/services/esrf-visa/edit").status_code == 404


def test_the_console_service_answers_alike_for_the_pages(federation):  # noqa: ANN001
    broker, _client = federation
    from panmodel.errors import NotFound

    olga = Principal("person:olga", operator_of=frozenset({"ill"}))
    assert [f["id"] for f in broker.operator.facilities(olga)] == ["ill"]
    view = broker.operator.view(olga, "ill")
    assert [s["id"] for s in view.services] == ["ill-visa"] and [e["id"] for e in view.endpoints] == ["ill-search"]
    assert broker.operator.editable(olga, "ill", KINDS.service, "ill-visa")["id"] == "ill-visa"
    for facility_id, kind, key in (("ill", KINDS.service, "esrf-visa"), ("esrf", KINDS.service, "esrf-visa"),
                                   ("ill", KINDS.eosc_entry, "esrf-visa"), ("ill", KINDS.search_endpoint, "nope")):
        with pytest.raises(NotFound):
            broker.operator.editable(olga, facility_id, kind, key)
    with pytest.raises(NotFound):
        broker.operator.view(olga, "esrf")
