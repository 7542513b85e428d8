"""A VaDE in the Image tab, in a real browser (Debian chromium driven by Playwright): picking it turns
the class picker into a cluster picker and shows the clusters view, which draws one row per cluster."""
import pytest

from studio_helpers import launch, make_weights
from test_browser import ARGS, CHROMIUM, pytestmark  # noqa: F401 - the same skips and filters
from test_vade_ui import K, add_vade


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, url = launch(add_vade(make_weights(tmp_path_factory.mktemp("vade-browser-weights"))))
    yield url
    demo.close()


def info_has(page, text):
    page.wait_for_function("t => { const e = document.querySelector('#sample-info');"
                           " return e && e.innerText.includes(t); }", arg=text)


def test_picking_a_vade_shows_its_clusters_one_row_each(app_url):
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(app_url)
            info_has(page, "dcgan-mnist")
            assert not page.locator("#clusters-box").is_visible()           # a GAN has no clusters
            page.click("#model input")
            page.click("ul[role=listbox] >> text=vade-mnist")
            info_has(page, "vade-mnist")
            assert "Cluster" in page.locator("#label").inner_text()
            page.get_by_text("Clusters: one row of samples per cluster", exact=False).click()
            page.click("#show-clusters")
            page.wait_for_function(f"document.querySelectorAll('#clusters .aigc-cluster-row').length == {K}")
            rows = page.locator("#clusters .aigc-cluster-row")
            assert rows.nth(0).inner_text().startswith("cluster 1 · 50.0%")      # most common first
            assert all(rows.nth(i).locator("img").count() == 8 for i in range(K))
            page.click("#model input")                     # another model: the rows go, so does the view
            page.click("ul[role=listbox] >> text=vae-mnist")
            page.wait_for_function("document.querySelectorAll('#clusters .aigc-cluster-row').length == 0")
            assert not page.locator("#clusters-box").is_visible()
        finally:
            browser.close()
