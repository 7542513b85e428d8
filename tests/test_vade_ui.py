"""The studio with a VaDE: the cluster picker, sampling one cluster, the clusters view, an encoded
picture's cluster posterior, interpolation inside a cluster, and the Fine-tune check's groups."""
import io
import os
import types
import zipfile

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from studio_helpers import make_weights

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
K = 3                                   # the tiny vade's clusters
WEIGHTS = [0.2, 0.5, 0.3]               # its mixture weights: cluster 1 is the most common


def add_vade(root, name="vade-mnist", dataset="mnist"):
    """A tiny untrained VaDE with distinct mixture weights and spread-out components."""
    from aigc import checkpoint as ckpt
    from aigc.kinds import build

    torch.manual_seed(0)
    m = build("vade", tiny=True)
    g = torch.Generator().manual_seed(1)
    d = m.latent_dim
    m.set_prior(torch.tensor(WEIGHTS), torch.randn(K, d, generator=g) * 3, torch.full((K, d), 0.3))
    ckpt.save_pretrained(m, root / name, meta={"dataset": dataset})
    (root / name / "metrics.json").write_text('{"cluster_acc": 0.7158, "nmi": 0.71442, "fid": 22.77}')
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return add_vade(make_weights(tmp_path_factory.mktemp("vade-weights")))


@pytest.fixture(scope="module")
def studio(weights, tmp_path_factory):
    import app
    from demo.image_handlers import Studio
    from demo.models import ModelRegistry

    app.configure_runtime()
    return Studio(ModelRegistry(weights), tmp_path_factory.mktemp("vade-tmp"))


def test_the_cluster_picker_takes_the_class_pickers_place(studio):
    label, temp, info = studio.model_controls("vade-mnist")
    assert label["visible"] and label["label"] == "Cluster" and label["value"] == "any"
    assert label["choices"] == [("any cluster", "any"), ("cluster 0 (share 20.0%)", "0"),
                                ("cluster 1 (share 50.0%)", "1"), ("cluster 2 (share 30.0%)", "2")]
    assert temp["label"] == "Prior temperature" and "3 clusters" in info
    assert "cluster accuracy % 71.58, NMI 0.7144" in info             # what a VaDE is measured by, beside FID
    label, _, _ = studio.model_controls("dcgan-mnist")
    assert label["label"] == "Class" and label["choices"][0] == ("any class (cycles)", "any")
    assert studio.cluster_box("vade-mnist")[0]["visible"] and not studio.cluster_box("dcgan-mnist")[0]["visible"]


def test_sampling_a_cluster_is_deterministic_and_draws_from_it(studio):
    from demo.image_handlers import new_state

    grid, info, st = studio.sample("vade-mnist", "1", 5, 2, 1.0, new_state())
    again, _, _ = studio.sample("vade-mnist", "cluster 1", 5, 2, 1.0, new_state())
    other, _, _ = studio.sample("vade-mnist", "2", 5, 2, 1.0, new_state())
    assert np.array_equal(np.asarray(grid), np.asarray(again)) and not np.array_equal(np.asarray(grid), np.asarray(other))
    assert "4 samples · cluster 1" in info
    _, _, cold = studio.sample("vade-mnist", "1", 5, 1, 0.0, new_state())       # temperature 0: the centre
    mu = studio.reg.get("vade-mnist").pipe.model.prior_mu[1].detach().numpy()
    np.testing.assert_allclose(cold["samples"][0]["z"], mu, rtol=1e-5, atol=1e-5)
    with pytest.raises(gr.Error, match="cluster"):
        studio.sample("vade-mnist", "7", 5, 2, 1.0, new_state())
    out = studio.open_sample(st, 0)                  # the editor opens with its latent dimension sliders
    assert out[-3]["visible"] is True


def test_clusters_view_has_one_row_per_cluster_most_common_first(studio):
    html, info = studio.clusters("vade-mnist", 3, 1.0)
    rows = html.split('class="aigc-cluster-row"')[1:]
    assert len(rows) == K and "3 clusters" in info
    assert [r.split("<span")[1].split(">")[1].split("<")[0] for r in rows] == [
        "cluster 1 · 50.0%", "cluster 2 · 30.0%", "cluster 0 · 20.0%"]
    assert all(r.count("<img") == 8 for r in rows)
    assert studio.clusters("vade-mnist", 3, 1.0) == (html, info)             # the same seed, the same rows
    with pytest.raises(gr.Error, match="not a VaDE"):
        studio.clusters("vae-mnist", 3, 1.0)
    with pytest.raises(gr.Error, match="seed"):
        studio.clusters("vade-mnist", -1, 1.0)


def test_encoding_shows_the_cluster_posterior(studio, tmp_path):
    from demo.image_handlers import new_state

    a = np.full((40, 40), 255, np.uint8)
    a[8:32, 17:23] = 0
    pic = tmp_path / "digit.png"
    Image.fromarray(a).save(pic)
    out = studio.encode(str(pic), "vade-mnist", "any", new_state())
    st = out[-1]
    assert len(st["posterior"]) == K and sum(st["posterior"]) == pytest.approx(1.0, abs=1e-5)
    assert "most likely cluster" in out[2]
    view = studio.posterior_view(st)
    assert view["visible"] and view["value"].count("aigc-posterior-bar") == K
    st = studio.encode(str(pic), "vae-mnist", "any", st)[-1]
    assert st["posterior"] is None and not studio.posterior_view(st)["visible"]


def test_interpolating_two_seeds_stays_in_the_cluster(studio):
    from demo.image_handlers import new_state

    pipe = studio.reg.get("vade-mnist").pipe
    out = studio.interpolate("two seeds", "vade-mnist", "2", 1, 2, 3, "lerp", 0.5, new_state())
    strip = out[-1]["strip"]
    np.testing.assert_allclose(strip[0]["z"], pipe.latents(1, 1, 2, 0.5)[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(strip[-1]["z"], pipe.latents(1, 2, 2, 0.5)[0].numpy(), rtol=1e-5, atol=1e-6)


def _zip(path, n, size, mode):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            im = Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            z.writestr(f"pics/{i:03d}.png", buf.getvalue())
    return path


def test_the_check_report_groups_an_upload_or_says_why_not(studio, tmp_path):
    from demo.finetune_handlers import FinetuneHandlers

    h = FinetuneHandlers(studio.reg, types.SimpleNamespace(root=tmp_path / "jobs"))
    md, _ = h.check_upload(str(_zip(tmp_path / "grey.zip", 30, 28, "L")), "new:vae", "28")
    assert "groups (vade-mnist): your 30 images fall into" in md
    assert 1 <= md.count('class="aigc-group-row"') <= K + 1
    md, _ = h.check_upload(str(_zip(tmp_path / "colour.zip", 16, 32, "RGB")), "new:dcgan", "32")
    line = [x for x in md.splitlines() if "groups:" in x]
    assert len(line) == 1 and "32x32 colour; vade-mnist groups 28x28 grey" in line[0]
    assert "aigc-group-row" not in md
    bare = FinetuneHandlers(types.SimpleNamespace(entries={}), types.SimpleNamespace(root=tmp_path / "j2"))
    md, _ = bare.check_upload(str(tmp_path / "grey.zip"), "new:vae", "28")
    assert "groups" not in md                         # no VaDE on the server: nothing to say
