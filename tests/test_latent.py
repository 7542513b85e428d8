"""Latent tools: interpolation, directions (computed once, stored atomically), pipeline
encode/edit/interpolate, recipes, GAN projection and the memorisation check."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from aigc import latent
from aigc.pipelines import recipes
from aigc import checkpoint as ckpt
from aigc.data import ImageData
from aigc.eval.nearest import TrainingIndex
from aigc.pipelines.image import ImagePipeline
from aigc.latent.projection import project
from aigc.kinds import build

from studio_helpers import make_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_weights(tmp_path_factory.mktemp("weights"))


def toy_images(n=300, seed=0):
    """Blobs of varying position and size: enough structure for PCA to find something."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 1, 28, 28), np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(3, 8)
        out[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
    return torch.from_numpy(out)


# -- interpolation ---------------------------------------------------------------------------------
def test_slerp_endpoints_norm_and_fallback():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g), torch.randn(64, generator=g)
    p = latent.path(a, b, 9, "slerp")
    assert p.shape == (9, 64)
    assert torch.allclose(p[0], a, atol=1e-5) and torch.allclose(p[-1], b, atol=1e-5)
    # slerp keeps the norm near that of Gaussian vectors; lerp shrinks it in the middle
    mid_s, mid_l = latent.slerp(a, b, 0.5).norm(), latent.lerp(a, b, 0.5).norm()
    assert mid_s > 0.9 * min(a.norm(), b.norm()) and mid_l < mid_s
    assert torch.allclose(latent.slerp(a, 2 * a, 0.5), 1.5 * a)       # parallel: falls back to lerp
    with pytest.raises(ValueError):
        latent.path(a, b, 1)
    with pytest.raises(ValueError):
        latent.path(a, b, 4, "cubic")


def test_gif_bytes_is_an_animation():
    frames = (np.random.default_rng(0).random((5, 28, 28, 1)) * 255).astype(np.uint8)
    im = Image.open(io.BytesIO(latent.gif_bytes(frames, scale=2)))
    assert im.format == "GIF" and im.is_animated and im.size == (56, 56)


# -- directions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dcgan", "seed-gan"])
def test_ganspace_directions_unit_and_sorted(kind):
    m = build(kind, tiny=True).eval()
    d = latent.ganspace(m, n=1024, k=5)
    assert d.vectors.shape == (5, m.latent_dim)
    assert torch.allclose(d.vectors.norm(dim=1), torch.ones(5), atol=1e-5)
    assert (d.explained[:-1] >= d.explained[1:] - 1e-6).all() and d.explained.sum() <= 1 + 1e-5
    assert d.kl is None and d.dim_order == []
    assert torch.equal(latent.ganspace(m, n=1024, k=5).vectors, d.vectors)       # deterministic


def test_vae_directions_pca_and_kl_order():
    m = build("vae", tiny=True).eval()
    d = latent.vae_directions(m, toy_images())
    assert d.vectors.shape == (4, 4) and d.n_principal == 4
    assert (d.scales[:-1] >= d.scales[1:]).all()                               # largest first
    assert d.kl.shape == (4,) and sorted(d.dim_order) == [0, 1, 2, 3]
    assert [float(d.kl[i]) for i in d.dim_order] == sorted(d.kl.tolist(), reverse=True)
    # a dimension the encoder ignores (zeroed weights -> mu = bias 0, logvar 0) has KL 0 and comes last
    with torch.no_grad():
        m.to_mu.weight[2].zero_(); m.to_mu.bias[2].zero_()
        m.to_logvar.weight[2].zero_(); m.to_logvar.bias[2].zero_()
    d2 = latent.vae_directions(m, toy_images())
    assert d2.dim_order[-1] == 2 and float(d2.kl[2]) < 1e-6


def test_directions_stored_once_atomically_and_checked(weights):
    pipe = ImagePipeline.from_pretrained(weights / "seed-gan-mnist")
    for f in (latent.VECTORS_FILE, latent.NAMES_FILE):
        (pipe.path / f).unlink(missing_ok=True)
    d = latent.ensure_directions(pipe, k=6)
    assert (pipe.path / latent.VECTORS_FILE).is_file() and (pipe.path / latent.NAMES_FILE).is_file()
    assert not list(pipe.path.glob(".*.tmp"))
    info = json.loads((pipe.path / latent.NAMES_FILE).read_text())
    assert info["weights_hash"] == ckpt.weights_hash(pipe.path) and info["names"][0] == "PC1"
    again = latent.load_directions(pipe.path, pipe.model.latent_dim, ckpt.weights_hash(pipe.path))
    assert torch.equal(again.vectors, d.vectors) and again.names == d.names
    # stale (other weights), wrong latent size, or a corrupt file: not used, recomputed
    assert latent.load_directions(pipe.path, pipe.model.latent_dim, "0" * 16) is None
    assert latent.load_directions(pipe.path, pipe.model.latent_dim + 1) is None
    (pipe.path / latent.VECTORS_FILE).write_bytes(b"garbage")
    assert latent.load_directions(pipe.path, pipe.model.latent_dim) is None
    d3 = latent.ensure_directions(pipe, k=6)
    assert torch.allclose(d3.vectors, d.vectors)


def test_name_save_and_rename_directions(weights):
    pipe = ImagePipeline.from_pretrained(weights / "dcgan-mnist")
    d = latent.ensure_directions(pipe, k=4)
    d = latent.rename_direction(pipe.path, d, 0, "  stroke   width ")
    assert d.names[0] == "stroke width"
    v = torch.zeros(pipe.model.latent_dim)
    v[3] = 2.0
    d = latent.add_direction(pipe.path, d, v, "my edit")
    loaded = latent.load_directions(pipe.path, pipe.model.latent_dim, ckpt.weights_hash(pipe.path))
    assert loaded.names == ["stroke width", "PC2", "PC3", "PC4", "my edit"] and loaded.n_principal == 4
    assert torch.allclose(loaded.offset([0, 0, 0, 0, 1.0]), v)            # slider 1 repeats the edit
    for bad in ["", "x" * 41, "<script>", None]:
        with pytest.raises(ValueError):
            latent.add_direction(pipe.path, loaded, v, bad)
    with pytest.raises(ValueError, match="exists"):
        latent.add_direction(pipe.path, loaded, v, "PC2")
    with pytest.raises(ValueError, match="empty"):
        latent.add_direction(pipe.path, loaded, torch.zeros_like(v), "nothing")
    with pytest.raises(ValueError):
        latent.add_direction(pipe.path, loaded, torch.zeros(3), "short")


# -- pipeline methods -----------------------------------------------------------------------------------
def test_pipeline_edit_interpolate_encode(weights):
    vae = ImagePipeline.from_pretrained(weights / "vae-mnist")
    s = vae(2, seed=1)
    z = s.latents[0]
    assert np.array_equal(vae.edit(z).images[0], s.images[0])                # no offsets: same picture
    d = latent.vae_directions(vae.model, toy_images(100))
    e = vae.edit(z, [1.0], d, {2: 0.5})
    expect = torch.from_numpy(z) + d.scales[0] * d.vectors[0]
    expect[2] += 0.5
    assert torch.allclose(torch.from_numpy(e.latents[0]), expect, atol=1e-6)
    with pytest.raises(ValueError):
        vae.edit(z, dim_offsets={99: 1.0})
    with pytest.raises(ValueError):
        vae.edit(z, [float("nan")], d)
    it = vae.interpolate(s.latents[0], s.latents[1], 5)
    assert it.images.shape == (5, 28, 28, 1)
    assert np.array_equal(it.images[0], s.images[0]) and np.array_equal(it.images[-1], s.images[1])
    enc = vae.encode(s.images[:1])
    assert enc.latents.shape == (1, vae.model.latent_dim) and enc.images.shape == (1, 28, 28, 1)
    with pytest.raises(ValueError):
        vae.encode(np.zeros((1, 32, 32, 1), np.uint8))
    gan = ImagePipeline.from_pretrained(weights / "dcgan-mnist")
    calls = []
    out = gan.encode(gan(1, seed=3, label=4).images, label=4, steps=12, starts=2,
                     progress=lambda i, n, err: calls.append((i, n)))
    assert out.labels.tolist() == [4] and calls[-1] == (12, 12)


def test_projection_recovers_a_generated_image():
    torch.manual_seed(0)
    m = build("seed-gan", tiny=True).eval()
    z = torch.randn(1, m.latent_dim)
    with torch.no_grad():
        target = m.decode(z)
    with torch.no_grad():
        start = float(((m.decode(torch.randn(8, m.latent_dim)) - target) ** 2).mean())
    p = project(m, target, steps=200, starts=8, lr=0.1)
    assert p.mse < 0.25 * start and p.psnr > 10 * np.log10(1 / start)
    assert p.latent.shape == (m.latent_dim,) and np.isfinite(p.latent).all()
    assert m.training is False and all(q.requires_grad for q in m.parameters())   # model left as it was


# -- recipes ----------------------------------------------------------------------------------------------
def make_recipe(**kw):
    base = dict(model="vae-mnist", weights_hash="abcd" * 4, z=[0.1, -1.5, 2.0, 0.3333333432674408],
                label=None, source="edit", seed=7, index=2, temperature=0.8,
                latent=[0.0, -1.5, 2.0, 0.3], offsets={"directions": {"PC1": 0.5}, "dims": {"3": 0.1}},
                directions="f00")
    base.update(kw)
    return recipes.Recipe(**base)


def test_recipe_json_and_png_round_trip_exactly():
    r = make_recipe()
    back = recipes.from_json(r.to_json())
    assert back == r
    z32 = np.asarray(r.z, np.float32)
    assert np.array_equal(np.asarray(recipes.from_json(r.to_json()).z, np.float32), z32)
    img = (np.random.default_rng(0).random((28, 28, 1)) * 255).astype(np.uint8)
    data = recipes.png_bytes(img, r)
    assert recipes.read(data) == r
    im = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(im), img[..., 0])
    pil = recipes.png_image(img, r, size=280)            # what the UI shows: enlarged, recipe in info
    assert pil.size == (280, 280) and recipes.from_json(pil.info[recipes.PNG_KEY]) == r


@pytest.mark.parametrize("text,msg", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"model": "m", "z": []}', "non-empty"),
    ('{"model": "m", "z": [1, NaN]}', "finite"),
    ('{"model": "m", "z": [1, "a"]}', "finite"),
    ('{"z": [1]}', "name a model"),
    ('{"model": "m", "z": [1], "format": "other/9"}', "unknown format"),
    ('{"model": "m", "z": [1], "label": -1}', "label"),
    ('{"model": "m", "z": [1], "seed": 1.5}', "seed"),
    ('{"model": "m", "z": [1, 2], "latent": [1]}', "different lengths"),
    ('{"model": "m", "z": [1], "offsets": {"dims": {"0": "x"}}}', "finite number"),
])
def test_bad_recipes_are_refused_with_a_reason(text, msg):
    with pytest.raises(recipes.RecipeError, match=msg):
        recipes.from_json(text)


def test_png_without_recipe_and_other_files_refused():
    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, format="PNG")
    with pytest.raises(recipes.RecipeError, match="carries no aigc recipe"):
        recipes.read(buf.getvalue())
    with pytest.raises(recipes.RecipeError, match="expected a recipe"):
        recipes.read(b"GIF89a....")
    with pytest.raises(recipes.RecipeError):
        recipes.latent_array([1.0, 2.0], 3)


# -- memorisation check -----------------------------------------------------------------------------------
def test_nearest_finds_the_training_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (500, 28, 28, 1), dtype=np.uint8)
    data = ImageData("toy", images, np.arange(500) % 10, [str(i) for i in range(10)])
    idx = TrainingIndex(data, ImageData("toy-test", images[:20].copy()))
    m = idx.query(images[123])[0][0]
    assert m.index == 123 and m.distance < 1e-3 and m.label == 3 and m.label_name == "3"
    noisy = np.clip(images[45].astype(int) + 10, 0, 255).astype(np.uint8)
    m = idx.query(noisy, k=2)[0]
    assert m[0].index == 45 and m[0].distance < m[1].distance
    assert idx.reference() < 1e-3
    with pytest.raises(ValueError):
        idx.query(np.zeros((32, 32, 1), np.uint8))


def test_per_model_indexes_are_bounded_and_drop_stale_files(tmp_path, monkeypatch):
    """The per-process cache of per-model indexes keeps at most MAX_MODEL_INDEXES, least recently
    used out first, and a rewritten training_images.npz replaces its old index rather than adding one."""
    import os
    from aigc.eval import nearest
    monkeypatch.setattr(nearest, "_INDEXES", {})
    monkeypatch.setattr(nearest, "MAX_MODEL_INDEXES", 3)
    rng = np.random.default_rng(0)
    dirs = []
    for i in range(5):
        d = tmp_path / f"m{i}"
        d.mkdir()
        nearest.save_training_images(d, ImageData("upload:x", rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8), None, []))
        dirs.append(d)
    for d in dirs[:3]:
        nearest.index_for_model(d, None)
    first = nearest.index_for_model(dirs[0], None)               # used again: now the most recent
    nearest.index_for_model(dirs[3], None)                        # drops m1, the least recently used
    keys = [k[0] for k in nearest._INDEXES]
    assert len(keys) == 3 and str((dirs[1] / nearest.TRAINING_IMAGES).resolve()) not in keys
    assert nearest.index_for_model(dirs[0], None) is first
    path = dirs[0] / nearest.TRAINING_IMAGES                      # rewritten: a new index, the old one gone
    nearest.save_training_images(dirs[0], ImageData("upload:x", rng.integers(0, 256, (7, 8, 8, 1), dtype=np.uint8), None, []))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10 ** 9))
    again = nearest.index_for_model(dirs[0], None)
    assert again is not first and len(again) == 7
    assert [k[0] for k in nearest._INDEXES].count(str(path.resolve())) == 1 and len(nearest._INDEXES) == 3


def test_training_images_saved_beside_a_model(tmp_path):
    """An upload-trained model keeps its prepared images (distinct, uint8, no pickle); the nearest
    check uses them, with leave-one-out distances as the scale since an upload has no test split."""
    from aigc.eval.nearest import TRAINING_IMAGES, index_for_model, load_training_images, save_training_images
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    balanced = np.concatenate([images, images[:10]])             # --balance repeats images
    labels = np.concatenate([np.arange(40) % 2, np.zeros(10, int)])
    path = save_training_images(tmp_path, ImageData("upload:x", balanced, labels, ["cat", "dog"]))
    assert path == tmp_path / TRAINING_IMAGES and not list(tmp_path.glob("*.tmp*"))
    back = load_training_images(path)
    assert np.array_equal(back.images, images) and list(back.labels) == list(np.arange(40) % 2)
    assert back.class_names == ["cat", "dog"]
    idx = index_for_model(tmp_path, None)
    assert len(idx) == 40 and not idx.reference_is_test
    m = idx.query(images[7])[0][0]
    assert m.index == 7 and m.label_name == "dog"
    assert idx.reference() > 10                                # random images are far from each other
    with pytest.raises(ValueError, match="nothing to compare"):
        index_for_model(tmp_path / "elsewhere", None)
    with pytest.raises(ValueError, match="elsewhere does not record its training images"):
        index_for_model(tmp_path / "elsewhere", "upload:x")      # an upload model from before the file
    # not what we wrote: a pickled object array, wrong dtype, garbage
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "f32.npz", images=np.zeros((2, 8, 8, 1), np.float32))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    for bad in ("obj.npz", "f32.npz", "junk.npz"):
        with pytest.raises(ValueError, match=bad):
            load_training_images(tmp_path / bad)
