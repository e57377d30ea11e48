"""The real SOS catalog: loading, lookups, fuzzy dataset references, and refresh."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from catalog.cli import main as catalog_main
from catalog.cli import refresh
from catalog.datasets import (
    AmbiguousDataset,
    Catalog,
    CatalogError,
    default_catalog_path,
    normalize_title,
    slug_of,
)


def test_the_shipped_catalog_has_the_520_datasets(catalog: Catalog) -> None:
    assert len(catalog) == 520
    urls = {e.url for e in catalog}
    assert len(urls) == 520
    assert all(u.startswith("https://sos.noaa.gov/catalog/datasets/") for u in urls)
    tsunami = [e for e in catalog if "tsunami" in e.slug]
    assert len(tsunami) >= 20


def test_lookup_by_url_slug_and_title(catalog: Catalog) -> None:
    url = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"
    entry = catalog.by_url(url + "/")
    assert entry is not None and entry.title == "Tsunami Locations - 2000 BCE - 2014"
    assert catalog.by_url(url.replace("https", "http").upper().replace("HTTP", "http")) == entry
    assert catalog.by_slug("tsunami-locations-2000-bce-2014") == entry
    assert catalog.by_title("tsunami locations 2000 bce 2014") == entry
    assert catalog.by_url("https://sos.noaa.gov/support/") is None
    assert slug_of("https://example.com/catalog/datasets/x") is None


def test_related_datasets_are_parsed(catalog: Catalog) -> None:
    entry = catalog.resolve("tsunami-locations-2000-bce-2014")
    assert entry.related and all(catalog.is_catalog_url(r.url) for r in entry.related)
    assert "Tsunamis" in entry.categories and "Water" in entry.categories


@pytest.mark.parametrize(
    "ref",
    [
        "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014/",
        "tsunami-locations-2000-bce-2014",
        "Tsunami Locations - 2000 BCE - 2014",
        "tsunami locations",
        "tsunami locations 2000 bce",
    ],
)
def test_resolve_accepts_what_an_installation_would_send(catalog: Catalog, ref: str) -> None:
    assert catalog.resolve(ref).slug == "tsunami-locations-2000-bce-2014"


@pytest.mark.parametrize("ref", ["pizza party", "", "   ", "https://sos.noaa.gov/about/"])
def test_resolve_fails_loudly_on_nonsense(catalog: Catalog, ref: str) -> None:
    with pytest.raises(CatalogError):
        catalog.resolve(ref)


def test_summary_is_cut_at_a_sentence(catalog: Catalog) -> None:
    entry = catalog.resolve("120-years-earthquakes-tsunamis")
    text = entry.summary(300)
    assert len(text) <= 300 and text.endswith(".")


def test_bad_catalog_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(bad)
    bad.write_text(json.dumps([{"url": "https://example.com/x", "title": "X"}]))
    with pytest.raises(CatalogError, match="no datasets"):
        Catalog.load(bad)


def test_refresh_from_a_real_http_server(tmp_path: Path) -> None:
    records = json.loads(default_catalog_path().read_text())
    records[0] = dict(records[0], title="A Newer Title")
    served = tmp_path / "www"
    served.mkdir()
    (served / "catalog.json").write_text(json.dumps([*records, {"junk": 1}]))
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/catalog.json"
        out = tmp_path / "catalog" / "sos.json"
        assert refresh(url, out) == 520
        assert Catalog.load(out).entries[0].title == "A Newer Title"
        with pytest.raises(CatalogError, match="only 0 datasets"):
            (served / "empty.json").write_text("[]")
            refresh(url.replace("catalog.json", "empty.json"), out)
        assert len(Catalog.load(out)) == 520  # the good copy was not replaced
    finally:
        server.shutdown()


def test_catalog_show_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert catalog_main(["show", "tsunami locations"]) == 0
    out = capsys.readouterr().out
    assert "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014" in out
    assert catalog_main(["show", "pizza party"]) == 2


@pytest.mark.parametrize("ref", ["sea surface temperature", "hurricane season", "Sea Ice"])
def test_a_name_several_datasets_share_is_ambiguous(catalog: Catalog, ref: str) -> None:
    with pytest.raises(AmbiguousDataset) as info:
        catalog.resolve(ref)
    found = info.value
    assert len(found.candidates) >= 2 and found.total >= len(found.candidates)
    words = set(normalize_title(ref).split())
    for entry in found.candidates:  # every candidate holds every word of the name
        assert words <= set(entry.title_key.split()) | set(entry.slug.replace("-", " ").split())
    assert found.candidates[0].title in str(found)
    # Any candidate's slug, URL or full title is exact again.
    pick = found.candidates[1]
    assert catalog.resolve(pick.slug) == catalog.resolve(pick.url) == pick
    assert catalog.resolve(pick.title) == pick


def test_ambiguity_lists_at_most_ten_best_first(catalog: Catalog) -> None:
    with pytest.raises(AmbiguousDataset) as info:
        catalog.resolve("temperature")
    assert len(info.value.candidates) == 10 < info.value.total
    with pytest.raises(AmbiguousDataset) as info:
        catalog.resolve("sea surface temperature")
    assert info.value.candidates[0].title == "Sea Surface Temperature Model"
