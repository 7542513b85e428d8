"""A real browser (Debian chromium driven by Playwright) on a launched studio: sample, open a
sample, drag a slider and see the picture change, upload a picture and see its reconstruction,
restore a recipe and get the exact image back."""
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from studio_helpers import click_tile, grid_box, launch, make_weights

CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,                       # a browser per module: the full tier (make test)
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="needs Debian chromium (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    weights = make_weights(tmp_path_factory.mktemp("browser-weights"))
    demo, url = launch(weights)
    yield demo, url
    demo.close()


def open_page(url: str, ready: str):
    """A headless chromium page at `url` once `ready` (a selector) is on it; closed after the yield."""
    pw = pytest.importorskip("playwright.sync_api")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(30_000)
        pg.goto(url)
        pg.wait_for_selector(ready)
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def page(app_url):
    yield from open_page(app_url[1], "#sample")


def editor_src(page) -> str | None:
    loc = page.locator("#editor img")
    return loc.get_attribute("src") if loc.count() else None


def wait_new_src(page, old: str | None, selector: str = "#editor img"):
    page.wait_for_function(
        """([sel, old]) => { const i = document.querySelector(sel);
                             return i && i.src && i.src !== old && i.complete && i.naturalWidth > 0; }""",
        arg=[selector, old or ""])
    return page.locator(selector).get_attribute("src")


def wait_settled(page, selector: str = "#editor img", quiet_ms: int = 700) -> str:
    """The image's src once it has stopped changing (no render still on its way)."""
    last, since = None, 0
    for _ in range(200):
        src = page.locator(selector).get_attribute("src")
        if src == last:
            since += 100
            if since >= quiet_ms:
                return src
        else:
            last, since = src, 0
        page.wait_for_timeout(100)
    raise AssertionError("the image never settled")


def fetch_pixels(page, src: str) -> np.ndarray:
    r = page.request.get(src)
    assert r.ok
    return np.asarray(Image.open(io.BytesIO(r.body())).convert("L"))


def test_sample_open_and_drag_a_slider(page):
    page.click("#model input")
    page.click("ul[role=listbox] >> text=seed-gan-mnist")
    page.wait_for_function("document.querySelector('#sample-info').innerText.includes('seed-gan-mnist')")
    page.click("#sample")
    page.wait_for_function("document.querySelector('#sample-info').innerText.includes('16 samples')")
    page.wait_for_timeout(500)
    click_tile(page, 2, 4)
    src0 = wait_new_src(page, None)
    assert "seed 0 #2" in page.locator("#editor-info").inner_text()
    before = fetch_pixels(page, src0)
    # drag the first direction slider with the mouse: the picture follows while the hand moves
    rng = page.locator("#dir1 input[type=range]")
    rng.scroll_into_view_if_needed()
    box = rng.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    seen = set()
    for f in (0.6, 0.7, 0.8, 0.9):
        page.mouse.move(box["x"] + box["width"] * f, y, steps=3)
        page.wait_for_timeout(120)
        seen.add(editor_src(page))
    page.mouse.up()
    wait_new_src(page, src0)
    src1 = wait_settled(page)
    assert len(seen - {src0}) >= 2                       # several renders during one drag
    after = fetch_pixels(page, src1)
    assert after.shape == (280, 280) and not np.array_equal(before, after)
    assert float(page.locator("#dir1 input[type=number]").input_value()) > 1.0
    page.click("#reset")
    src2 = wait_new_src(page, src1)
    assert np.array_equal(fetch_pixels(page, src2), before)


def test_upload_a_picture_and_see_its_reconstruction(page, tmp_path):
    a = np.full((150, 120), 250, np.uint8)
    a[25:125, 52:68] = 10                                # a dark '1' on white paper
    pic = tmp_path / "my-digit.png"
    Image.fromarray(a).save(pic)
    page.get_by_text("Encode your own picture", exact=True).click()
    page.locator("#upload input[type=file]").set_input_files(str(pic))
    page.wait_for_selector("#recon img")
    page.wait_for_function("document.querySelector('#encode-info').innerText.includes('error')")
    info = page.locator("#encode-info").inner_text()
    assert "inverted" in info and "PSNR" in info
    prepared = fetch_pixels(page, page.locator("#prepared img").get_attribute("src"))
    assert prepared.max() > 200 and prepared[0, 0] < 20  # light on dark, like the training data


def test_restore_a_recipe_gives_the_exact_image(page, app_url, tmp_path):
    from demo.image_handlers import new_state

    studio = app_url[0].studio
    _, _, st = studio.sample("vae-mnist", "any", 21, 2, 0.8, new_state())
    st = studio.open_sample(st, 1)[-1]
    img, st = studio.edit(st, {"dir1": 1.5, "dim1": -1.0})
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(st["current"]))
    old = editor_src(page)
    page.get_by_text("Restore a recipe", exact=True).click()
    page.locator("#recipe-in input[type=file]").set_input_files(str(recipe))
    src = wait_new_src(page, old)
    assert np.array_equal(fetch_pixels(page, src), np.asarray(img.convert("L")))
    assert "vae-mnist" in page.locator("#editor-info").inner_text()
    assert float(page.locator("#dir1 input[type=number]").input_value()) == 1.5
    assert page.locator("#dim1").is_visible()


def test_bad_upload_shows_a_message_and_the_page_keeps_working(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture at all")
    clear = page.locator("#upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_selector("text=not a picture")
    page.click("#sample")                                # still serving
    grid_box(page)


def test_a_finished_model_reaches_the_page_without_a_reload(page, app_url):
    """A model published while the page is open (what a finished fine-tune does: registry.add)
    shows up: the Fine-tune tab's poll sees the registry's new version, its hidden counter
    changes, and that refreshes the Models table and the Image tab's model picker."""
    import torch

    from aigc import checkpoint as ckpt
    from aigc.kinds import build

    reg = app_url[0].studio.reg
    page.get_by_role("tab", name="Fine-tune").click()
    torch.manual_seed(0)
    folder = ckpt.save_pretrained(build("vae", tiny=True), reg.user_models_dir / "fresh-model",
                                  meta={"dataset": "upload:x"})
    assert reg.add(folder) == "fresh-model"
    page.wait_for_function("document.querySelector('#ft-models-version input').value == '%d'" % reg.version,
                           timeout=15_000)
    page.get_by_role("tab", name="Models").click()
    page.wait_for_selector("text=fresh-model", timeout=10_000)           # only the change event refreshes it
    page.click("#card-pick input")                                     # its card can be read, no restart
    page.click("ul[role=listbox] >> text=fresh-model")
    page.wait_for_selector("#model-card >> text=fresh-model", timeout=10_000)
    page.get_by_role("tab", name="Image").click()
    page.click("#model input")
    page.wait_for_selector("ul[role=listbox] >> text=fresh-model")
    page.keyboard.press("Escape")


def test_finetune_upload_picks_a_suitable_base(page, tmp_path):
    """In the Fine-tune tab, uploading a zip of images moves the base picker from a text model to a
    new VAE (the quickest recognisable samples on a CPU), and the time-limit box is there."""
    from test_uploads import good_members, make_zip

    page.get_by_role("tab", name="Fine-tune").click()
    page.click("#ft-base input")
    page.click("ul[role=listbox] >> text=new char-lm (train from scratch)")
    page.wait_for_function("document.querySelector('#ft-base input').value.startsWith('new char-lm')")
    assert page.get_by_label("time limit, minutes (0: none)").count() == 1
    z = make_zip(tmp_path / "faces.zip", good_members(8))
    page.locator("#ft-upload input[type=file]").set_input_files(str(z))
    page.wait_for_function("document.querySelector('#ft-base input').value.startsWith('new vae')",
                           timeout=15_000)
