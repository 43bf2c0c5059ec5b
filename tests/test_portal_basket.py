"""The basket in the portal: a signed-in scientist adds datasets from search results and dataset pages, the basket
page says where they would be analysed together and why, and "Analyse together" starts one session, followed on
its session page like any other; a form sent twice is one launch."""
from __future__ import annotations

import re

import pytest

from broker.authz import Principal
from panmodel.datasets import Dataset
from panmodel.errors import InvalidInput
from tests.test_portal_pages import ADMIN, signed_in, site, token_of  # noqa: F401 - the shared fixture


def add(client, pid: str, back: str):  # noqa: ANN001, ANN201
    page = client.get(back).text
    return client.post("/basket/add", data={"csrf_token": token_of(page), "pid": pid, "back": back},
                       follow_redirects=False)


def test_datasets_collected_from_search_and_pages_are_analysed_together_in_one_session(site):  # noqa: ANN001, F811
    broker, client = site
    broker.index.upsert([Dataset(pid="ill/2", facility="ill", title="SANS of lysozyme in D2O", source="s"),
                         Dataset(pid="esrf/1", facility="esrf", title="SAXS of lysozyme", source="s")])
    broker.index.commit()
    assert "Add to basket" not in client.get("/search?q=lysozyme").text  # signed out: nothing to collect into
    assert client.get("/basket").status_code == 401
    ada = signed_in(broker, client, "ada")
    assert "Your basket is empty" in client.get("/basket").text
    assert "Add to basket" in client.get("/search?q=lysozyme").text

    added = add(client, "ill/1", "/search?q=lysozyme")
    assert added.status_code == 303 and added.headers["location"] == "/search?q=lysozyme"
    assert add(client, "ill/2", "/datasets/ill/2").headers["location"] == "/datasets/ill/2"
    assert "In your basket" in client.get("/datasets/ill/2").text
    page = client.get("/basket").text
    assert re.search(r"ILL VISA</strong> at ILL\.\s*<span id=\"basket-reason\">Why: all 2 datasets are held by ill",
                     page)

    add(client, "esrf/1", "/datasets/esrf/1")
    page = client.get("/basket").text
    assert "Why: ill holds 2 of the 3 datasets; the open data of the others is fetched in." in page
    assert re.search(r'data-pid="esrf/1">.*?fetched in \(open data\)', page, re.S)

    form = {"csrf_token": token_of(page),
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)}
    started = client.post("/basket/analyse", data=form, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"].startswith("/sessions/")
    again = client.post("/basket/analyse", data=form, follow_redirects=False)  # the same form sent twice: the same launch
    assert again.headers["location"] == started.headers["location"]
    launches = broker.launches.list(Principal(f"person:{ada['id']}"))
    assert len(launches) == 1 and launches[0]["service_id"] == "ill-visa"
    assert [d["pid"] for d in launches[0]["basket"]["datasets"]] == ["ill/1", "ill/2", "esrf/1"]
    session = client.get(started.headers["location"]).text
    assert "3 datasets together" in session and "SAXS of lysozyme" in session
    assert "<code>esrf/1</code> · ESRF · fetched in (open data)" in session  # each facility by name
    assert broker.analyse.session(Principal(f"person:{ada['id']}"), launches[0].id).names["esrf"] == "ESRF"
    assert "ill holds 2 of the 3 datasets" in session


def test_removing_every_dataset_leaves_nothing_to_analyse(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "bob")
    add(client, "ill/1", "/datasets/ill/1")
    page = client.get("/basket").text
    client.post("/basket/remove", data={"csrf_token": token_of(page), "pid": "ill/1"})
    page = client.get("/basket").text
    assert "Your basket is empty" in page
    refused = client.post("/basket/analyse", data={"csrf_token": token_of(page), "idempotency_key": "k"})
    assert refused.status_code == 422 and "Your basket is empty" in refused.text


def test_the_basket_view_names_the_chosen_service_and_facilities_and_is_each_persons_own(site):  # noqa: ANN001, F811
    broker, _client = site
    ada, bob = (broker.people.principal(broker.people.create(ADMIN, {
        "display_name": name, "identities": [{"issuer": "idp", "subject": name}]})["id"]) for name in ("ada", "bob"))
    broker.basket_items.add(ada, "ill/1")
    page = broker.basket_items.page(ada)
    assert [d.pid for d in page.datasets] == ["ill/1"] and page.plan.service_id == "ill-visa"
    assert page.service_title == "ILL VISA" and page.names == {"esrf": "ESRF", "ill": "ILL"}
    mine = broker.basket_items.page(bob)  # another person's basket is not shown to bob
    assert (mine.datasets, mine.plan, mine.service_title) == ((), None, None)
    with pytest.raises(InvalidInput, match="Your basket is empty"):
        broker.basket_items.launch(bob, "key-1")
    first, again = broker.basket_items.launch(ada, "key-1"), broker.basket_items.launch(ada, "key-1")
    assert first.id == again.id and first.service_id == "ill-visa" and first.basket["datasets"][0]["pid"] == "ill/1"
