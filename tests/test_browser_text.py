"""The Text tab in a real browser (Debian chromium driven by Playwright): write a poem in a form,
interpolate between two lines with the shipped text VAE."""
import os
import shutil
from pathlib import Path

import pytest

from test_browser import ARGS, CHROMIUM
from test_tang import _tiny_poet

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="needs Debian chromium (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    import gradio as gr

    from aigc import checkpoint as ckpt
    from aigc.text import forms
    from demo.text_tab import TextModels, build_text_tab
    from studio_helpers import free_port

    pw = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("browser-text")
    ckpt.save_pretrained(_tiny_poet().model, root / "tiny-poet",
                         meta={"dataset": "tang", "text_stats": {"poem_forms": list(forms.FORMS)}})
    os.symlink(ROOT / "weights" / "textvae-tang", root / "textvae-tang")
    with gr.Blocks() as demo:
        build_text_tab(TextModels(root))
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(30_000)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.wait_for_selector("#text-generate")
            yield pg
            browser.close()
    finally:
        demo.close()


def test_write_a_poem_in_a_form(page):
    from aigc.text import forms
    page.get_by_role("tab", name="Poem").click()
    page.fill("#poem-title textarea, #poem-title input", "春望")
    page.click("#poem-write")
    page.wait_for_function("document.querySelector('#poem-info').innerText.includes('form kept')")
    poem = page.locator("#poem-output textarea").input_value()
    assert poem.startswith("春望\n") and forms.check_form(poem, "五言绝句").ok


def test_interpolate_two_lines(page):
    page.get_by_role("tab", name="Latent").click()
    page.click("#tvae-interpolate")
    page.wait_for_function("document.querySelector('#tvae-path-info').innerText.includes('steps decoded')")
    assert "8 steps decoded" in page.locator("#tvae-path-info").inner_text()
    assert page.locator("#tvae-path").inner_text().count("✓") + page.locator("#tvae-path").inner_text().count("✗") >= 8
