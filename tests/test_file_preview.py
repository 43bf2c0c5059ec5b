"""File preview of open data: a facility registers its h5grove endpoint and H5Web app on a service
(``capabilities.file_preview``); the catalogue says so; a public dataset's HDF5/NeXus files link to the viewer;
embargoed data and other files get no link; a bad registration is refused naming the field."""
from __future__ import annotations

import pytest

from broker.authz import Principal
from panmodel.errors import InvalidInput
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, FileRef

ADMIN = Principal("test", admin=True)
PREVIEW = {"kind": "h5grove", "url": "https://h5grove.esrf.example", "viewer_url": "https://h5web.esrf.example/view"}
FILES = (FileRef("scan_0001.h5", "/data/visitor/ma1234/id22"), FileRef("notes.txt", "/data/visitor/ma1234/id22"),
         FileRef("master.nxs", "/data/visitor/ma1234/id22/master.nxs"))


@pytest.fixture
def esrf(sqlite_broker):  # noqa: ANN001, ANN201
    sqlite_broker.registry.create(ADMIN, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR"})
    sqlite_broker.index.upsert([Dataset(pid="esrf/1", facility="esrf", title="Open scan", files=FILES),
                                Dataset(pid="esrf/2", facility="esrf", title="Embargoed scan", files=FILES,
                                        is_public=False)])
    sqlite_broker.index.commit()
    return sqlite_broker


def test_an_open_datasets_hdf5_files_link_to_the_facilitys_h5web_view(esrf, sqlite_client):  # noqa: ANN001
    assert "Preview files" not in sqlite_client.get("/datasets/esrf/1").text  # nothing registered yet
    esrf.registry.create(ADMIN, KINDS.service, {"id": "esrf-h5", "facility_id": "esrf", "kind": "jupyterhub",
                                                "title": "ESRF data viewer", "base_url": "https://hub.esrf.example",
                                                "capabilities": {"file_preview": PREVIEW}})
    page = sqlite_client.get("/datasets/esrf/1").text
    assert 'href="https://h5web.esrf.example/view?file=%2Fdata%2Fvisitor%2Fma1234%2Fid22%2Fscan_0001.h5"' in page
    assert 'href="https://h5web.esrf.example/view?file=%2Fdata%2Fvisitor%2Fma1234%2Fid22%2Fmaster.nxs"' in page
    assert "notes.txt" not in page.split('id="preview"')[1].split("</ul>")[0]
    assert "Preview files" not in sqlite_client.get("/datasets/esrf/2").text  # embargoed: no preview
    assert esrf.catalogue.services(facility=["esrf"])[0]["capabilities"]["file_preview"] == PREVIEW


def test_the_dataset_view_holds_the_previews_of_open_data_only(esrf):  # noqa: ANN001
    from broker.previews import FilePreview

    esrf.registry.create(ADMIN, KINDS.service, {"id": "esrf-h5", "facility_id": "esrf", "kind": "jupyterhub",
                                                "title": "ESRF data viewer", "base_url": "https://hub.esrf.example",
                                                "capabilities": {"file_preview": {**PREVIEW, "viewer_url":
                                                                                  "https://h5web.esrf.example/?a=1"}}})
    previews = esrf.analyse.panel(None, "esrf/1").previews
    assert previews == (
        FilePreview("scan_0001.h5", None, "ESRF data viewer",
                    "https://h5web.esrf.example/?a=1&file=%2Fdata%2Fvisitor%2Fma1234%2Fid22%2Fscan_0001.h5"),
        FilePreview("master.nxs", None, "ESRF data viewer",
                    "https://h5web.esrf.example/?a=1&file=%2Fdata%2Fvisitor%2Fma1234%2Fid22%2Fmaster.nxs"))
    operator = Principal("person:olga", operator_of=frozenset({"esrf"}))
    assert esrf.analyse.panel(operator, "esrf/2").previews == ()  # embargoed: no link, whoever looks


@pytest.mark.parametrize("preview, field", [
    ({"kind": "zarr", "url": "https://a.example", "viewer_url": "https://b.example"}, "kind"),
    ({"kind": "h5grove", "url": "javascript:alert(1)", "viewer_url": "https://b.example"}, "url"),
    ({"kind": "h5grove", "url": "https://a.example"}, "viewer_url"),
])
def test_a_bad_file_preview_registration_is_refused_naming_the_field(esrf, preview, field):  # noqa: ANN001
    with pytest.raises(InvalidInput) as refused:
        esrf.registry.create(ADMIN, KINDS.service, {"id": "esrf-h5", "facility_id": "esrf", "kind": "jupyterhub",
                                                    "title": "x", "base_url": "https://hub.esrf.example",
                                                    "capabilities": {"file_preview": preview}})
    assert any(field in e.field for e in refused.value.errors)
