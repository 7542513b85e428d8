"""Tests of aigc.eval: fast (seconds), no full 10k-image Inception pass.

The Inception tests run the real network on a handful of images; the real-statistics cache is
exercised with a stand-in feature function so that it needs no Inception pass at all.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aigc.data.images import load_dataset
from aigc.eval import METRICS, evaluate, evaluate_samples, generate_samples
from aigc.eval import classifier as clf
from aigc.eval import inception, metrics, realstats
from aigc.eval.frechet import frechet_distance, frechet_distance_features, kernel_inception_distance
from aigc.kinds import build


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist", "test")


# -- Fréchet distance and KID ------------------------------------------------------------------------
def test_frechet_self_is_zero_and_noise_is_far():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    assert abs(frechet_distance_features(a, a)) < 1e-6
    noise = rng.uniform(-3, 3, size=(500, 16)) + 2.0
    assert frechet_distance_features(a, noise) > 10.0


def test_frechet_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    expected = 5.0 + sum((np.sqrt(a) - np.sqrt(b)) ** 2 for a, b in [(1, 4), (4, 4), (9, 1)])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)


def test_frechet_matches_a_hand_computed_full_covariance_case():
    """Non-commuting 2-d covariances: for a 2x2 matrix M with positive eigenvalues,
    tr sqrtm(M) = sqrt(tr M + 2 sqrt(det M)). S1 S2 = [[20, 2], [8, 1]] has trace 21 and
    determinant 4, so tr sqrtm(S1 S2) = sqrt(21 + 4) = 5 and the distance is
    |(1, 2)|^2 + 6 + 5 - 2 * 5 = 6. The mutant sqrtm(S1) @ sqrtm(S2) gives 6.10."""
    s1, s2 = np.array([[5.0, 2.0], [2.0, 1.0]]), np.diag([4.0, 1.0])
    assert frechet_distance(np.zeros(2), s1, np.array([1.0, 2.0]), s2) == pytest.approx(6.0, abs=1e-9)
    assert frechet_distance(np.array([1.0, 2.0]), s2, np.zeros(2), s1) == pytest.approx(6.0, abs=1e-9)
    root1 = (s1 + np.eye(2)) / np.sqrt(8.0)                # sqrtm of s1 by the same 2x2 formula
    mutant = 5.0 + 11.0 - 2.0 * np.trace(root1 @ np.sqrt(s2))
    assert abs(mutant - 6.0) > 0.09                       # so this case tells the two apart


def _correlated(rng, n, d):
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_frechet_agrees_with_fid_helper_pytorch():
    """The same fixed features through fid_helper_pytorch's own statistics and FID formula."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    from types import SimpleNamespace
    rng = np.random.default_rng(7)
    f1, f2 = _correlated(rng, 300, 8), _correlated(rng, 200, 8)
    helper = SimpleNamespace(ref_stat_dict={"mu": np.mean(f1, axis=0), "sigma": np.cov(f1, rowvar=False)},
                             eval_stat_dict={"mu": np.mean(f2, axis=0), "sigma": np.cov(f2, rowvar=False)})
    reference = fid_helper.FidHelper.compute_fid_score(helper)   # needs only the two stat dicts
    assert frechet_distance_features(f1, f2) == pytest.approx(float(reference), rel=1e-9)
    assert reference > 1.0


def _kid_by_hand(x, y):
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written pair by pair."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2.0 * xy


def test_kid_refuses_bad_features():
    a, b = np.ones((5, 3)), np.ones((5, 4))
    for x, y, shapes in [(a, b, r"\(5, 3\) and \(5, 4\)"), (np.ones(5), a, r"\(5,\) and \(5, 3\)"),
                         (a, np.ones(5), r"\(5, 3\) and \(5,\)")]:
        with pytest.raises(ValueError, match=rf"^KID needs two N x D feature matrices, got {shapes}$"):
            kernel_inception_distance(x, y, subsets=1)
    for x, y, size in [(np.ones((1, 3)), a, 1000), (a, np.ones((1, 3)), 1000), (a, a, 1)]:
        with pytest.raises(ValueError, match=r"^KID needs at least 2 samples on each side$"):
            kernel_inception_distance(x, y, subsets=1, subset_size=size)


def test_kid_defaults_are_the_published_protocol(monkeypatch):
    """100 subsets of 1,000 per side, seed 0 (Binkowski et al. 2018; torch-fidelity). A stand-in
    for the kernel keeps it fast: only the subset draws are compared."""
    from aigc.eval import frechet
    monkeypatch.setattr(frechet, "_mmd2_unbiased", lambda x, y: float(x.sum() - y.sum()))
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1001, 1)), rng.normal(size=(1001, 1))
    assert kernel_inception_distance(x, y) == kernel_inception_distance(x, y, subsets=100, subset_size=1000, seed=0)
    assert kernel_inception_distance(x, y)[2] == 1000


def test_kid_matches_a_direct_computation():
    # by hand, d = 1: k(0, 1) = 1, k(1, 2) = 27, cross terms 1 + 1 + 8 + 27 -> 1 + 27 - 2 * 37 / 4 = 9.5
    mean, std, m = kernel_inception_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]), subsets=1)
    assert (mean, std, m) == (pytest.approx(9.5, abs=1e-12), 0.0, 2)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 0.5
    mean, _, m = kernel_inception_distance(x, y, subsets=3, subset_size=12)   # every subset is the whole set
    assert m == 12 and mean == pytest.approx(_kid_by_hand(x, y), rel=1e-12)
    mean, std, _ = kernel_inception_distance(x, y, subsets=4, subset_size=6, seed=1)
    picks = np.random.RandomState(1)
    by_hand = []
    for _ in range(4):
        xi, yi = picks.choice(12, 6, replace=False), picks.choice(12, 6, replace=False)
        by_hand.append(_kid_by_hand(x[xi], y[yi]))
    assert mean == pytest.approx(np.mean(by_hand), rel=1e-12) and std == pytest.approx(np.std(by_hand), rel=1e-9)


def test_frechet_refuses_bad_statistics():
    with pytest.raises(ValueError, match=r"^need an N x D feature matrix with N >= 2, got shape \(1, 3\)$"):
        frechet_distance_features(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="N x D"):
        frechet_distance_features(np.arange(5.0), np.arange(5.0))             # 1-d: no feature axis
    assert np.isfinite(frechet_distance_features(np.eye(2, 3), np.eye(2, 3)[::-1]))   # N = 2 is enough
    with pytest.raises(ValueError, match=r"^mismatched statistics: mu \(3,\) vs \(3,\), sigma \(3, 3\) vs \(2, 2\)$"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))


def test_frechet_retries_with_eps_when_sqrtm_fails(monkeypatch):
    """A non-finite sqrtm of the product is recomputed as sqrtm((S1 + eps I)(S2 + eps I)), eps 1e-6."""
    from aigc.eval import frechet
    seen, real_sqrtm = [], frechet._sqrtm

    def flaky(a):
        seen.append(a.copy())
        return np.full_like(a, np.nan) if len(seen) == 1 else real_sqrtm(a)
    monkeypatch.setattr(frechet, "_sqrtm", flaky)
    s1, s2 = np.array([[5.0, 2.0], [2.0, 1.0]]), np.diag([4.0, 1.0])
    value = frechet_distance(np.zeros(2), s1, np.array([1.0, 2.0]), s2)
    e = 1e-6 * np.eye(2)
    assert len(seen) == 2 and np.array_equal(seen[1], (s1 + e) @ (s2 + e))
    assert value == pytest.approx(6.0, abs=1e-4) and value != 6.0


@pytest.mark.parametrize("imag, warns", [(0.5, True), (2e-3, True), (1e-3, False)])
def test_frechet_warns_about_a_large_imaginary_residue(monkeypatch, imag, warns):
    import warnings
    from aigc.eval import frechet
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.eye(len(a)) * (1.0 + imag * 1j))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))
    assert value == pytest.approx(0.0)                    # the real part is used
    assert len(caught) == int(warns)
    if warns:
        w = caught[0]
        assert w.category is RuntimeWarning and w.filename == __file__    # reported at the caller's line
        assert str(w.message).startswith(f"frechet_distance: sqrtm left an imaginary component of {imag:.3g}; "
                                          "using the real part (too few samples")


def test_frechet_singular_covariance_is_finite():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 64))        # fewer samples than dimensions: singular sigma
    b = rng.normal(size=(10, 64))
    assert np.isfinite(frechet_distance_features(a, b))


def test_kid_identical_sets_is_near_zero_and_shifted_sets_positive():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 32))
    mean, std, m = kernel_inception_distance(a, a, subsets=20, subset_size=200)
    shifted, _, _ = kernel_inception_distance(a, a + 0.3, subsets=20, subset_size=200)
    assert m == 200
    assert abs(mean) < 2 * std + 1e-3 and abs(mean) < 0.05 * shifted   # unbiased: ~0 up to noise
    assert shifted > 5 * std


def test_kid_subset_size_shrinks_to_available_samples():
    rng = np.random.default_rng(0)
    _, _, m = kernel_inception_distance(rng.normal(size=(50, 8)), rng.normal(size=(80, 8)), subsets=3)
    assert m == 50


# -- Inception ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grey_pair(mnist_test):
    grey = mnist_test.images[:2]                              # 2 x 28 x 28 x 1
    rgb = np.repeat(grey, 3, axis=-1)
    return grey, inception.inception_features(grey), rgb, inception.inception_features(rgb)


def test_inception_features_shape_and_tiling(grey_pair):
    _, f_grey, _, f_rgb = grey_pair
    assert f_grey.shape == (2, 2048) and f_grey.dtype == np.float64
    assert np.isfinite(f_grey).all() and f_grey.std() > 0
    np.testing.assert_array_equal(f_grey, f_rgb)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_inception_matches_fid_helper(grey_pair):
    """Same pixels in, same features out as fid_helper_pytorch's own FidHelper defaults."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    _, _, rgb, f_rgb = grey_pair
    helper = fid_helper.FidHelper(device="cpu")
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2)
    ref = helper.extract_feats(x, data_range=[0, 255], resize_hw=helper.resize_hw,
                               resample_mode=helper.resample_mode, quant=True)
    np.testing.assert_allclose(f_rgb, ref, rtol=0, atol=1e-5)


def test_float_tensor_input_is_quantised_like_uint8(mnist_test):
    u8 = mnist_test.images[:3]
    t = torch.from_numpy(u8.copy()).permute(0, 3, 1, 2).float() / 255.0
    np.testing.assert_array_equal(inception.to_uint8_nhwc(t), u8)


def test_inception_file_is_the_standard_one():
    info = inception.inception_info()
    assert info["standard"] and info["sha1"] == inception.EXPECTED_SHA1


# -- real-statistics cache -------------------------------------------------------------------------------
def test_real_stats_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_features(images, device="cpu", batch_size=None, log=None):
        calls.append(len(images))                          # 16 pixels stand in for 2048 features
        return images.reshape(len(images), -1)[:, 400:416].astype(np.float64) / 255.0

    monkeypatch.setenv("AIGC_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "FEATURE_DIM", 16)
    monkeypatch.setattr(inception, "inception_features", fake_features)
    monkeypatch.setattr(realstats, "_MEMO", {})
    first = realstats.real_stats("mnist", "test")
    path = realstats.stats_path("mnist", "test")
    assert path.is_file() and path.parent == tmp_path / "fid"
    assert inception.EXPECTED_SHA1[:16] in path.name
    assert calls == [10000] and first["features"].dtype == np.float16
    monkeypatch.setattr(realstats, "_MEMO", {})          # a fresh process: read from disk
    again = realstats.real_stats("mnist", "test")
    assert calls == [10000]
    np.testing.assert_array_equal(again["mu"], first["mu"])
    assert not list((tmp_path / "fid").glob(".*.tmp"))   # atomic write left nothing behind


def test_evaluate_fid_kid_pipeline_with_stand_in_features(tmp_path, monkeypatch):
    """evaluate() end to end for fid+kid (sampling, quantisation, real-stats cache, protocol),
    with 16 pixels standing in for the Inception features so that it takes a second."""
    calls = []

    def fake_features(images, device="cpu", batch_size=None, log=None):
        calls.append(len(images))
        return images.reshape(len(images), -1)[:, 400:416].astype(np.float64) / 255.0

    monkeypatch.setenv("AIGC_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "FEATURE_DIM", 16)
    monkeypatch.setattr(inception, "inception_features", fake_features)
    monkeypatch.setattr(realstats, "_MEMO", {})
    gan = build("seed-gan", tiny=True)
    out = evaluate(gan, "mnist", metrics="fid,kid", n=60, seed=1, kid_subsets=5)
    assert calls == [60, 10000]                         # samples once (shared by fid and kid), real once
    assert out["fid"] > 0 and np.isfinite(out["kid"]) and out["kid_std"] >= 0
    assert out["kid_subset_size"] == 60 and out["kid_subsets"] == 5
    assert out["n"] == 60 and out["dataset"] == "mnist" and out["model_kind"] == "seed-gan"
    assert "pt_inception-2015-12-05" in out["protocol"] and "60 samples vs 10000 mnist test images" in out["protocol"]
    assert "grey tiled to 3 channels" in out["protocol"] and "5 subsets of 60" in out["protocol"]
    json.dumps(out)                                     # flat and JSON-able


def test_stale_cache_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_CACHE", str(tmp_path))
    path = realstats.stats_path("mnist", "test")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file")
    assert realstats._load(path, {"format": realstats.FORMAT}) is None


def _fake_features(calls):
    def features(images, device="cpu", batch_size=None, log=None):
        calls.append(len(images))                          # 16 pixels stand in for 2048 features
        return images.reshape(len(images), -1)[:, 400:416].astype(np.float64) / 255.0
    return features


@pytest.mark.parametrize("key, value", [("dataset", "fashion-mnist"), ("split", "train"), ("n", 500),
                                        ("inception_sha1", "0" * 40), ("preprocess", "an older resize"),
                                        ("format", "aigc-fid-stats/0")])
def test_cache_whose_metadata_differs_is_recomputed(tmp_path, monkeypatch, key, value):
    """A readable cache file under the right name whose stored facts describe something else
    (another dataset, split, image count, network or resize) is not trusted: the statistics are
    computed again and the file is rewritten."""
    from safetensors.numpy import load_file, save_file
    calls = []
    monkeypatch.setenv("AIGC_CACHE", str(tmp_path))
    monkeypatch.setattr(inception, "FEATURE_DIM", 16)
    monkeypatch.setattr(inception, "inception_features", _fake_features(calls))
    monkeypatch.setattr(realstats, "_MEMO", {})
    first = realstats.real_stats("mnist", "test")
    path = realstats.stats_path("mnist", "test")
    arrays = load_file(str(path))
    stale_info = dict(first["info"], **{key: value})
    save_file({"mu": arrays["mu"] + 1.0, "sigma": arrays["sigma"], "features": arrays["features"]}, str(path),
              metadata={"info": json.dumps(stale_info)})
    monkeypatch.setattr(realstats, "_MEMO", {})
    again = realstats.real_stats("mnist", "test")
    assert calls == [10000, 10000]                       # recomputed, not read
    np.testing.assert_array_equal(again["mu"], first["mu"])
    assert again["info"][key] == first["info"][key]
    monkeypatch.setattr(realstats, "_MEMO", {})
    assert realstats.real_stats("mnist", "test")["info"] == first["info"] and calls == [10000, 10000]


# -- domain classifier -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset,floor", [("mnist", 0.95), ("fashion-mnist", 0.85)])
def test_classifier_loads_and_is_accurate(dataset, floor):
    test = load_dataset(dataset, "test")
    model, meta = clf.load_classifier(dataset)
    assert meta["dataset"] == dataset and meta["test_accuracy"] > floor
    acc = clf.accuracy(model, test.images[:1000], test.labels[:1000])
    assert acc > floor


def test_classifier_refuses_pickles(tmp_path):
    src = clf.classifier_dir("mnist")
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="pickle"):
        clf.load_classifier("mnist", directory=tmp_path)


def test_domain_fd_of_test_set_is_zero_and_noise_is_far(mnist_test):
    same = evaluate_samples(mnist_test.images, "mnist", metrics=("domain_fd", "label_acc"),
                            labels=mnist_test.labels)
    assert abs(same["domain_fd"]) < 1e-3
    assert same["label_acc"] > 0.98
    assert "classifier-mnist" in same["protocol"]
    noise = np.random.default_rng(0).integers(0, 256, size=(500, 28, 28, 1), dtype=np.uint8)
    far = evaluate_samples(noise, "mnist", metrics="domain_fd")
    assert far["domain_fd"] > 100 * max(same["domain_fd"], 1e-3)
    assert far["domain_fd"] > 10.0


def test_evaluate_conditional_gan_domain_metrics():
    torch.manual_seed(0)
    gan = build("dcgan", tiny=True)                     # untrained, class-conditional
    out = evaluate(gan, "mnist", metrics=("domain_fd", "label_acc"), n=40, seed=3)
    assert set(out) >= {"domain_fd", "label_acc", "n", "dataset", "protocol", "model_kind"}
    assert out["n"] == 40 and out["dataset"] == "mnist" and 0.0 <= out["label_acc"] <= 1.0
    again = evaluate(gan, "mnist", metrics=("domain_fd",), n=40, seed=3)
    assert again["domain_fd"] == out["domain_fd"]       # seeded: reproducible


def test_diversity_is_one_for_data_and_low_for_one_look_per_class(mnist_test):
    """diversity: within-class spread of the samples over the test set's. Held-out training images
    are about as varied as the test set; the same image repeated per class scores near zero."""
    tr = load_dataset("mnist", "train")
    idx = np.random.default_rng(0).permutation(len(tr))[:2000]
    data = evaluate_samples(tr.images[idx], "mnist", metrics="diversity", labels=tr.labels[idx])
    assert 0.9 < data["diversity"] < 1.1 and "diversity" in data["protocol"]
    one = np.stack([mnist_test.images[np.flatnonzero(mnist_test.labels == c)[0]] for c in range(10)])
    collapsed = evaluate_samples(np.repeat(one, 50, axis=0), "mnist", metrics="diversity",
                                 labels=np.repeat(np.arange(10), 50))
    assert collapsed["diversity"] < 0.01
    # unconditional samples are grouped by the classifier's own reading
    assert 0.9 < evaluate_samples(tr.images[idx], "mnist", metrics="diversity")["diversity"] < 1.2


def test_generate_samples_balanced_labels():
    gan = build("dcgan", tiny=True)
    images, labels = generate_samples(gan, 25, seed=0)
    assert images.shape == (25, 28, 28, 1) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(25)]


# -- likelihood --------------------------------------------------------------------------------------------
def test_nll_of_tiny_vae_is_finite_and_positive():
    torch.manual_seed(0)
    vae = build("vae", tiny=True)
    out = evaluate(vae, "mnist", metrics=("nll",), n=8, nll_k=10)
    assert np.isfinite(out["nll_nats"]) and out["nll_nats"] > 0
    assert out["nll_k"] == 10 and out["nll_n"] == 8
    assert "k=10" in out["protocol"]
    assert evaluate(vae, "mnist", metrics=("nll",), n=8, nll_k=10)["nll_nats"] == out["nll_nats"]


# -- registry and errors -------------------------------------------------------------------------------------
def test_registry_lists_the_metrics():
    assert {"fid", "kid", "domain_fd", "label_acc", "diversity", "nll"} <= set(METRICS)
    assert all(callable(m) for m in METRICS.values())


def test_unknown_metric_raises_with_known_list():
    vae = build("vae", tiny=True)
    with pytest.raises(ValueError, match="known: .*fid"):
        evaluate(vae, "mnist", metrics=("fid", "sharpness"), n=4)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_samples(np.zeros((4, 28, 28, 1), np.uint8), "mnist", metrics="nope")


def test_inapplicable_metrics_raise_before_any_work():
    gan = build("seed-gan", tiny=True)
    with pytest.raises(ValueError, match="nll.*likelihood"):
        evaluate(gan, "mnist", metrics=("nll",), n=4)
    with pytest.raises(ValueError, match="class-conditional"):
        evaluate(gan, "mnist", metrics=("label_acc",), n=4)
    with pytest.raises(ValueError, match="needs the model"):
        evaluate_samples(np.zeros((4, 28, 28, 1), np.uint8), "mnist", metrics="nll")
    with pytest.raises(ValueError, match="labels"):
        evaluate_samples(np.zeros((4, 28, 28, 1), np.uint8), "mnist", metrics="label_acc")
    with pytest.raises(ValueError, match="32x32"):
        evaluate_samples(np.zeros((4, 32, 32, 1), np.uint8), "mnist", metrics="domain_fd")


def test_metric_functions_live_in_their_module():
    assert METRICS["fid"].fn is metrics.fid and METRICS["nll"].needs_samples is False


# -- cheap quality tracking for fine-tunes: kid_randconv and copy_rate against a reference -----------
@pytest.fixture(scope="module")
def upload_like():
    """A stand-in for a prepared upload: 200 distinct MNIST training images under an upload's name."""
    from aigc.data.images import ImageData
    train = load_dataset("mnist", "train")
    return ImageData("upload:digits", np.ascontiguousarray(train.images[:200]))


def _measure(name, images, reference):
    ctx = metrics.EvalContext(dataset=reference.name, device=torch.device("cpu"), n=len(images),
                              images=images, reference=reference)
    return METRICS[name](ctx)


def test_copy_rate_is_calibrated_on_the_datas_own_spacing(upload_like, mnist_test):
    """Fresh images of the same kind are rarely 'copies'; training images with a little pixel
    noise nearly always are; repeated training images (a balanced upload) change nothing."""
    from aigc.data.images import ImageData
    rng = np.random.default_rng(0)
    fresh = np.ascontiguousarray(mnist_test.images[:200])
    picks = upload_like.images[rng.integers(0, len(upload_like), 200)].astype(np.float64)
    noisy = np.clip(picks + rng.normal(0, 10, picks.shape), 0, 255).astype(np.uint8)
    assert _measure("copy_rate", fresh, upload_like)["copy_rate"] <= 0.05
    assert _measure("copy_rate", noisy, upload_like)["copy_rate"] >= 0.9
    repeated = ImageData("upload:balanced", np.concatenate([upload_like.images, upload_like.images[:60]]))
    assert _measure("copy_rate", fresh, repeated)["copy_rate"] <= 0.05
    assert _measure("copy_rate", noisy, repeated)["copy_rate"] >= 0.9


def test_kid_randconv_separates_real_from_noise_and_is_deterministic(upload_like, mnist_test):
    from aigc.eval import randfeat
    rng = np.random.default_rng(0)
    real = np.ascontiguousarray(mnist_test.images[:200])
    noise = rng.integers(0, 256, real.shape).astype(np.uint8)
    k_real = _measure("kid_randconv", real, upload_like)["kid_randconv"]
    k_noise = _measure("kid_randconv", noise, upload_like)["kid_randconv"]
    assert abs(k_real) < 0.01 and k_noise > 100 * max(abs(k_real), 1e-3)
    assert _measure("kid_randconv", real, upload_like)["kid_randconv"] == k_real
    f = randfeat.features(real[:3])
    assert f.shape == (3, randfeat.DIM) and np.isfinite(f).all()
    rgb = randfeat.features(np.repeat(real[:3], 3, axis=-1))        # grey is tiled to 3 channels
    assert np.allclose(f, rgb, atol=1e-5)


def test_evaluate_against_a_reference_set(upload_like):
    torch.manual_seed(0)
    model = build("dcgan", tiny=True, resolution=28, channels=1)
    res = evaluate(model, upload_like.name, metrics="kid_randconv,copy_rate", n=64, reference=upload_like)
    assert {"kid_randconv", "copy_rate", "protocol"} <= set(res) and res["n"] == 64
    assert "untrained 3-layer conv net" in res["protocol"] and "not comparable with Inception KID" in res["protocol"]
    with pytest.raises(ValueError, match="need a built-in dataset"):
        evaluate(model, upload_like.name, metrics="fid", n=8, reference=upload_like)
    with pytest.raises(ValueError, match="reference images are"):
        evaluate(build("dcgan", tiny=True, resolution=32, channels=3), upload_like.name, metrics="copy_rate", n=8,
                 reference=upload_like)


# -- text models (aigc.eval.text through `aigc eval`) -----------------------------------------------
def test_text_file_score_through_the_cli(tmp_path, capsys):
    """`aigc eval MODEL --text-file F --json`: nats/char as CharLM.nll counts them; bad files and
    image models get one line and exit code 2."""
    from aigc import checkpoint as ckpt
    from aigc.cli.commands import main
    from aigc.text.tokenizer import CharTokenizer
    text = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 3
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    ckpt.save_pretrained(model, tmp_path / "lm", meta={"dataset": "toy"})
    f = tmp_path / "t.txt"
    f.write_text(text + "Z", encoding="utf-8")                      # one character the model does not know
    assert main(["eval", str(tmp_path / "lm"), "--text-file", str(f), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    total, count = model.eval().nll(tok.encode(text + "Z"), batch_size=64)
    assert res["chars"] == count == len(text) and res["unknown_chars"] == 1 and res["file"] == str(f)
    assert res["nats_per_char"] == round(total / count, 4)
    assert res["bits_per_char"] == pytest.approx(res["nats_per_char"] / np.log(2), abs=1e-4)
    (tmp_path / "bad.txt").write_bytes(b"abc\xff\xfe")
    (tmp_path / "one.txt").write_text("a", encoding="utf-8")
    ckpt.save_pretrained(build("vae", tiny=True), tmp_path / "img", meta={"dataset": "mnist"})
    for model_dir, name, message in [("lm", "bad.txt", "is not UTF-8 text"), ("lm", "none.txt", "no such file"),
                                     ("lm", "one.txt", "at least 2 characters"),
                                     ("img", "t.txt", "--text-file applies to text models only")]:
        assert main(["eval", str(tmp_path / model_dir), "--text-file", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
