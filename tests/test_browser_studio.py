"""The Image and Models tabs as a newcomer meets them, in a real browser (Debian chromium driven by
Playwright): the first screen, results next to their controls, nothing stale, the grid's layout on a
desk and on a phone, the models' cards with their pictures, errors that name the field."""
import json

import numpy as np
import pytest
from PIL import Image

from studio_helpers import click_tile, grid_box, launch, make_weights
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


# wholly on screen, give or take the browser's sub-pixel rounding of a scrolled position
IN_VIEW = """s => { const r = document.querySelector(s).getBoundingClientRect();
                   return r.height > 0 && r.top >= -1 && r.bottom <= window.innerHeight + 1; }"""


def check_grid(page, side, width):
    """The grid is one picture of side x side tiles, whole on the screen, and a click on its last
    tile opens the last sample."""
    info_has(page, "#sample-info", f"{side * side} samples")
    page.wait_for_timeout(300)
    box = grid_box(page)
    nat = page.evaluate("(() => { const i = document.querySelector('#gallery img'); "
                        "return [i.naturalWidth, i.naturalHeight]; })()")
    assert nat[0] == nat[1] and box["width"] == pytest.approx(box["height"], abs=2)
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1          # nothing cut off at the sides
    assert box["width"] >= min(width - 80, 300)                            # and not shrunk to a stamp
    click_tile(page, side * side - 1, side)
    info_has(page, "#editor-info", f"#{side * side - 1}")
    page.wait_for_function(IN_VIEW, arg="#editor", timeout=5_000)         # the opened sample is on screen


def in_view(page, selector) -> bool:
    return page.evaluate(IN_VIEW, selector)


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
    click_tile(page, 1, 4)
    info_has(page, "#editor-info", "#1")
    page.click("#nearest")
    info_has(page, "#nearest-info", "Nearest of", timeout=120_000)
    page.locator("#nearest-img").wait_for(state="visible", timeout=30_000)    # the picture follows its caption
    assert in_view(page, "#nearest-info")
    click_tile(page, 2, 4)
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


def test_phone_grid_fits_the_width_and_its_tiles_open(pw, app_url):
    browser, pg = new_page(pw, app_url[1], 390, 844)
    try:
        info_has(pg, "#sample-info", "dcgan-mnist")
        check_grid(pg, 4, 390)
    finally:
        browser.close()
