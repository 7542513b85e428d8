"""The Image and Models tabs as a newcomer meets them, in a real browser (Debian chromium driven by
Playwright): the first screen, results next to their controls, nothing stale, the grid's layout on a
desk and on a phone, the models' cards with their pictures, errors that name the field."""
import json

import numpy as np
import pytest
from PIL import Image

from studio_helpers import launch, make_weights
from test_browser import ARGS, CHROMIUM, pytestmark  # noqa: F401 - the same skips and filters


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    weights = make_weights(tmp_path_factory.mktemp("studio-weights"))
    d = weights / "dcgan-mnist"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None], (64, 1))).save(d / "samples.png")
    (d / "README.md").write_text("# dcgan-mnist\n\nA tiny test GAN.\n\n![samples on seed 0](samples.png)\n")
    (d / "metrics.json").write_text(json.dumps({"fid": 123.4, "kid": 0.01706}))
    demo, url = launch(weights)
    yield demo, url
    demo.close()


def new_page(p, url, width=1400, height=1000):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    pg = browser.new_page(viewport={"width": width, "height": height})
    pg.set_default_timeout(30_000)
    pg.goto(url)
    return browser, pg


@pytest.fixture(scope="module")
def pw():
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def page(pw, app_url):
    browser, pg = new_page(pw, app_url[1])
    yield pg
    browser.close()


def info_has(page, selector, text, timeout=30_000):
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t); }",
                           arg=[selector, text], timeout=timeout)


def thumbs(page):
    return [page.locator("#gallery .thumbnail-item").nth(i).bounding_box()
            for i in range(page.locator("#gallery .thumbnail-item").count())]


def check_grid(page, side, width):
    page.wait_for_function(f"document.querySelectorAll('#gallery img').length == {side * side}")
    page.wait_for_timeout(300)
    boxes = thumbs(page)
    xs = sorted({round(b["x"]) for b in boxes})
    assert len(xs) == side, f"{side}x{side} grid drawn in {len(xs)} columns"
    gal = page.locator("#gallery").bounding_box()
    for b in boxes:                     # nothing clipped: inside the gallery and the screen
        assert b["x"] >= 0 and b["x"] + b["width"] <= width + 1
        assert b["y"] + b["height"] <= gal["y"] + gal["height"] + 1


def in_view(page, selector) -> bool:
    return page.evaluate("""s => { const r = document.querySelector(s).getBoundingClientRect();
                                   return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def test_first_screen_shows_the_readme_model_in_n_columns(page):
    info_has(page, "#sample-info", "dcgan-mnist")            # no click: the default model's grid
    assert page.locator("#model input").input_value() == "dcgan-mnist"
    check_grid(page, 4, 1400)
    assert "Lower" in page.locator("#temperature").inner_text()      # truncation explained


def test_switching_the_model_rerenders_the_grid(page):
    info_has(page, "#sample-info", "dcgan-mnist")
    page.click("#model input")
    page.click("ul[role=listbox] >> text=seed-gan-mnist")
    info_has(page, "#sample-info", "seed-gan-mnist")
    page.fill("#grid input[type=number]", "3")
    page.keyboard.press("Enter")
    page.click("#sample")
    check_grid(page, 3, 1400)


def test_nearest_shows_beside_its_button_and_clears_on_open(page, app_url):
    page.goto(app_url[1])                      # the first screen, whatever the tests before it did
    page.wait_for_selector("#sample")
    info_has(page, "#sample-info", "dcgan-mnist")
    page.locator("#gallery img").nth(1).click()
    info_has(page, "#editor-info", "#1")
    page.click("#nearest")
    info_has(page, "#nearest-info", "Nearest of", timeout=120_000)
    page.locator("#nearest-img").wait_for(state="visible", timeout=30_000)    # the picture follows its caption
    assert in_view(page, "#nearest-info")
    page.locator("#gallery img").nth(2).click()
    info_has(page, "#editor-info", "#2")
    page.wait_for_function("document.querySelector('#nearest-info').innerText.trim() === ''")
    assert not page.locator("#nearest-img").is_visible()


def test_restoring_a_recipe_switches_the_model_picker(page, app_url, tmp_path):
    from demo.image_handlers import new_state

    studio = app_url[0].studio
    _, _, st = studio.sample("vae-mnist", "any", 5, 2, 0.8, new_state())
    st = studio.open_sample(st, 0)[-1]
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(st["current"]))
    assert page.locator("#model input").input_value() != "vae-mnist"
    page.get_by_text("Restore a recipe", exact=True).click()
    page.locator("#recipe-in input[type=file]").set_input_files(str(recipe))
    info_has(page, "#editor-info", "vae-mnist")
    page.wait_for_function("document.querySelector('#model input').value == 'vae-mnist'")
    assert "Prior temperature" in page.locator("#temperature").inner_text()


def test_encoding_brings_the_editor_into_view(page, tmp_path):
    a = np.full((60, 60), 250, np.uint8)
    a[10:50, 25:35] = 10
    pic = tmp_path / "digit.png"
    Image.fromarray(a).save(pic)
    page.get_by_text("Encode your own picture", exact=True).click()
    page.locator("#upload").scroll_into_view_if_needed()
    assert not in_view(page, "#editor")
    page.locator("#upload input[type=file]").set_input_files(str(pic))
    info_has(page, "#encode-info", "PSNR", timeout=120_000)
    page.wait_for_function("""() => { const r = document.querySelector('#editor').getBoundingClientRect();
                                      return r.top >= 0 && r.bottom <= window.innerHeight; }""")


def test_errors_name_the_field(page):
    page.evaluate("window.scrollTo(0, 0)")
    page.fill("#seed input", "-5")
    page.click("#sample")
    page.wait_for_selector("text=seed must be between 0 and")


def test_an_example_row_samples_in_one_click(page):
    page.fill("#seed input", "0")
    page.locator("#image-examples").get_by_text("42").first.click()
    info_has(page, "#sample-info", "seed 42")
    check_grid(page, 6, 1400)


def test_models_tab_cards_pictures_and_rows(page):
    page.get_by_role("tab", name="Models").click()
    info_has(page, "#models-table", "KID×1000: 17.06")
    page.click("#card-pick input")
    page.click("ul[role=listbox] >> text=dcgan-mnist")
    info_has(page, "#model-card", "A tiny test GAN")
    page.wait_for_function("() => { const i = document.querySelector('#card-samples img');"
                           " return i && i.complete && i.naturalWidth == 64; }")
    assert page.locator("#model-card img").count() == 0          # no broken relative link
    page.locator("#models-table").get_by_text("vae-mnist", exact=True).locator("visible=true").first.click()
    page.wait_for_function("document.querySelector('#card-pick input').value == 'vae-mnist'")
    info_has(page, "#model-card", "vae")
    page.get_by_role("tab", name="Image").click()


def test_phone_gallery_follows_the_grid_and_the_width(pw, app_url):
    browser, pg = new_page(pw, app_url[1], 390, 844)
    try:
        info_has(pg, "#sample-info", "dcgan-mnist")
        pg.locator("#gallery").scroll_into_view_if_needed()
        check_grid(pg, 4, 390)
    finally:
        browser.close()
