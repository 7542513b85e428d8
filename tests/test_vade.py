"""VaDE: the mixture prior, the ELBO, the GMM initialisation and the clustering metrics."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

from aigc.eval.cluster import cluster_accuracy, nmi
from aigc.models.vade import VaDE, VaDEConfig
from aigc.train.vade_init import (encode_means, fit_diag_gmm, gmm_from_partition, init_prior,
                                  pretrain_autoencoder)

TINY = {"conv": {"arch": "conv", "width": 4, "hidden": 16, "latent_dim": 3, "n_clusters": 3},
        "mlp": {"arch": "mlp", "mlp_hidden": [32, 16], "latent_dim": 3, "n_clusters": 3}}


def tiny(arch="conv", **kw) -> VaDE:
    torch.manual_seed(0)
    return VaDE(VaDEConfig(**{**TINY[arch], **kw}))


def random_prior(model: VaDE) -> None:
    g = torch.Generator().manual_seed(1)
    k, d = model.n_clusters, model.latent_dim
    model.set_prior(torch.rand(k, generator=g) + 0.1, torch.randn(k, d, generator=g) * 2,
                    torch.rand(k, d, generator=g) + 0.2)


def test_log_prior_matches_a_direct_mixture():
    model = tiny()
    random_prior(model)
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(2)) * 3
    pi = torch.softmax(model.prior_logits, 0)
    direct = torch.stack([pi[c].log() + D.Independent(D.Normal(model.prior_mu[c],
                                                                (0.5 * model.prior_logvar[c]).exp()), 1).log_prob(z)
                          for c in range(model.n_clusters)], -1).logsumexp(-1)
    torch.testing.assert_close(model.log_prior(z), direct.detach(), rtol=1e-5, atol=1e-5)


def test_elbo_kl_is_the_mixture_kl_through_gamma():
    model = tiny("mlp")
    random_prior(model)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(4))
    out = model(x, eps=eps)
    mu, logvar = model.encode(x)
    z = mu + eps * (0.5 * logvar).exp()
    gamma = torch.softmax(model.log_joint(z), -1)
    torch.testing.assert_close(out["gamma"], gamma)
    q = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)
    pi = torch.softmax(model.prior_logits, 0)
    kl = sum(gamma[:, c] * (D.kl_divergence(q, D.Independent(D.Normal(model.prior_mu[c],
                                                                       (0.5 * model.prior_logvar[c]).exp()), 1))
                            + gamma[:, c].log() - pi[c].log()) for c in range(3))
    torch.testing.assert_close(out["kl"], kl, rtol=1e-4, atol=1e-4)
    assert (out["kl"] >= 0).all() and out["rec"].shape == (5,)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_one_elbo_step_lowers_the_loss_on_a_fixed_batch(arch):
    model = tiny(arch)
    x = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(5)))
    eps = torch.randn(8, 3, generator=torch.Generator().manual_seed(6))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        out = model(x, eps=eps)
        return (out["rec"] + out["kl"]).mean()

    before = loss()
    opt.zero_grad()
    before.backward()
    assert model.prior_mu.grad is not None and model.prior_logits.grad is not None
    opt.step()
    assert loss().item() < before.item()


def test_sampling_clusters_and_prediction():
    model = tiny(resolution=32, channels=3)
    random_prior(model)
    g = torch.Generator().manual_seed(0)
    imgs = model.sample(4, cluster=2, generator=g)
    assert imgs.shape == (4, 3, 32, 32) and 0 <= imgs.min() and imgs.max() <= 1
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 3, 32, 32)
    torch.testing.assert_close(model.mixture_latent(torch.zeros(2, 3), torch.tensor([1, 1])),
                               model.prior_mu[[1, 1]].detach())
    for bad in (3, -1, 1.5, "a"):
        with pytest.raises(ValueError, match="cluster"):
            model.sample(1, cluster=bad)
    with pytest.raises(ValueError, match="labels|label"):
        model.sample(1, labels=[0])
    x = torch.rand(6, 3, 32, 32)
    gamma = model.cluster_posterior(x)
    assert gamma.shape == (6, 3)
    torch.testing.assert_close(gamma.sum(1), torch.ones(6))
    assert torch.equal(model.predict(x), gamma.argmax(1))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="arch"):
        VaDE(VaDEConfig(arch="rnn"))
    with pytest.raises(ValueError, match="resolution"):
        VaDE(VaDEConfig(resolution=30))
    with pytest.raises(ValueError, match="needs 3 weights"):
        tiny().set_prior(torch.ones(2), torch.zeros(2, 3), torch.ones(2, 3))


def test_gmm_em_recovers_two_blobs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 2, generator=g) * 0.5 + torch.tensor([-5.0, 0.0])
    b = torch.randn(700, 2, generator=g) * torch.tensor([1.0, 0.3]) + torch.tensor([5.0, 2.0])
    fit = fit_diag_gmm(torch.cat([a, b])[torch.randperm(1000, generator=g)], 2, seed=0)
    order = fit.means[:, 0].argsort()
    torch.testing.assert_close(fit.weights[order], torch.tensor([0.3, 0.7]), atol=0.01, rtol=0)
    torch.testing.assert_close(fit.means[order], torch.tensor([[-5.0, 0.0], [5.0, 2.0]]), atol=0.1, rtol=0)
    torch.testing.assert_close(fit.variances[order].sqrt(), torch.tensor([[0.5, 0.5], [1.0, 0.3]]),
                               atol=0.06, rtol=0)
    with pytest.raises(ValueError):
        fit_diag_gmm(torch.zeros(1, 2), 2)


def test_a_given_partition_becomes_the_mixture_and_assign_returns_it():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(200, 2, generator=g) * 0.3 + 3, torch.randn(100, 2, generator=g) * 0.3 - 3])
    labels = torch.cat([torch.zeros(200), torch.ones(100)]).long()
    fit = gmm_from_partition(x, labels, 2)
    torch.testing.assert_close(fit.weights, torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(fit.means, torch.stack([x[:200].mean(0), x[200:].mean(0)]))
    torch.testing.assert_close(fit.variances, torch.stack([x[:200].var(0, unbiased=False), x[200:].var(0, unbiased=False)]),
                               atol=1e-5, rtol=1e-4)
    assert torch.equal(fit.assign(x), labels)
    # a partition EM would not keep (half of one blob labelled as the other) is kept as given
    odd = labels.clone()
    odd[:100] = 1
    assert gmm_from_partition(x, odd, 2).weights[1] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labels"):
        gmm_from_partition(x, torch.full((300,), 2), 2)


def rings(n: int = 300, seed: int = 0):
    """Two concentric rings: two groups that are connected but not Gaussian blobs."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(2 * n, generator=g) * 2 * math.pi
    r = torch.cat([torch.full((n,), 1.0), torch.full((n,), 4.0)]) + torch.randn(2 * n, generator=g) * 0.1
    return torch.stack([r * t.cos(), r * t.sin()], 1), torch.cat([torch.zeros(n), torch.ones(n)]).long()


def test_the_knn_graph_is_exact():
    from aigc.train.vade_init import knn_graph

    z = torch.randn(230, 3, generator=torch.Generator().manual_seed(2))
    idx, d2 = knn_graph(z, 5, chunk=64)
    full = torch.cdist(z, z).pow(2)
    full.fill_diagonal_(float("inf"))
    v, j = full.topk(5, largest=False)
    assert torch.equal(idx, j) and torch.allclose(d2, v, atol=1e-4)


def test_spectral_groups_what_a_gmm_splits():
    from aigc.train.vade_init import spectral_partition

    z, y = rings()
    groups = spectral_partition(z, 2, neighbours=10)
    assert cluster_accuracy(y.numpy(), groups.numpy()) == 1.0
    assert torch.equal(spectral_partition(z, 2, neighbours=10), groups)                 # seeded: it repeats
    gmm = fit_diag_gmm(z, 2, seed=0, n_init=3).assign(z)
    assert cluster_accuracy(y.numpy(), gmm.numpy()) < 0.8                               # halves, not rings
    with pytest.raises(ValueError, match="NaN"):
        spectral_partition(torch.full((50, 2), float("nan")), 2, neighbours=5)
    with pytest.raises(ValueError, match="more points"):
        spectral_partition(z[:8], 2, neighbours=10)


def test_a_small_fragment_joins_its_strongest_neighbour_before_two_whole_groups_join():
    import scipy.sparse as sp

    from aigc.train.vade_init import _merge_groups

    # A (points 0-5) and B (6-11) are whole groups joined by two strong links (4 with 9); C (12-15),
    # a fragment of A (a slanted 1), hangs on A by a weaker link and on B by a weaker one still
    lab = np.array([0] * 6 + [1] * 6 + [2] * 4)
    a = np.zeros((16, 16))
    for lo, hi in ((0, 6), (6, 12), (12, 16)):
        a[lo:hi, lo:hi] = 1.0
    for i, j, v in ((5, 6, 0.9), (4, 7, 0.9), (12, 0, 0.3), (13, 11, 0.05)):
        a[i, j] = a[j, i] = v
    merged = _merge_groups(sp.csr_matrix(a), lab, 2)
    assert len(set(merged[:6].tolist() + merged[12:].tolist())) == 1            # C went to A
    assert len(set(merged[6:12])) == 1 and merged[0] != merged[6]               # B stays apart
    assert sorted(set(merged.tolist())) == [0, 1]
    assert np.array_equal(_merge_groups(sp.csr_matrix(a), lab, 3), lab)       # nothing to merge
    # the rule the start used before (the two most strongly joined groups first) joins A with B here
    w = np.array([[a[lab == p][:, lab == q].sum() for q in range(3)] for p in range(3)])
    vol = w.sum(1)
    assert w[0, 1] / min(vol[0], vol[1]) > w[0, 2] / min(vol[0], vol[2])


def test_random_affine_moves_and_turns_pictures():
    from aigc.train.augment import random_affine

    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 10:18, 13:15] = 1.0                                     # an upright bar through the centre
    torch.testing.assert_close(random_affine(x, torch.full((2, 3), 0.5)), x)       # u = 0.5: no move
    one_px = 0.5 + (2 / 28) / (4 * 0.1)                            # a shift of 2/28 in grid units: one pixel
    u = torch.tensor([[0.5, one_px, 0.5], [0.5, 0.5, one_px]])
    y = random_affine(x, u)
    torch.testing.assert_close(y[0], torch.roll(x[0], -1, dims=2), atol=1e-5, rtol=0)   # sampled from the right
    torch.testing.assert_close(y[1], torch.roll(x[1], -1, dims=1), atol=1e-5, rtol=0)   # from below
    turned = random_affine(x, torch.tensor([[1.0, 0.5, 0.5], [0.0, 0.5, 0.5]]), degrees=90.0)
    assert turned[0, 0, 13:15, 10:18].mean() > 0.9 and turned[1, 0, 13:15, 10:18].mean() > 0.9  # now lying down
    assert abs(float(turned.sum() - x.sum())) < 0.5
    with pytest.raises(ValueError, match="uniforms"):
        random_affine(x, torch.rand(3, 3))


def test_pretrain_then_gmm_init_sets_the_prior():
    model = tiny("mlp")
    images = (torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 255).to(torch.uint8)
    losses = pretrain_autoencoder(model, images, epochs=2, batch_size=16)
    assert len(losses) == 2 and losses[1] < losses[0]
    moved = [pretrain_autoencoder(tiny("mlp"), images, epochs=1, batch_size=16, augment=1.0) for _ in range(2)]
    plain = pretrain_autoencoder(tiny("mlp"), images, epochs=1, batch_size=16)
    assert moved[0] == moved[1] and moved[0] != plain            # moved pictures, the same moves for one seed
    fit = init_prior(model, images)
    torch.testing.assert_close(model.prior_mu.detach(), fit.means)
    torch.testing.assert_close(torch.softmax(model.prior_logits, 0).detach(), fit.weights / fit.weights.sum())
    with pytest.raises(ValueError, match="takes"):
        init_prior(model, torch.zeros(40, 1, 32, 32))
    spec = init_prior(model, images, method="spectral", neighbours=5)
    assert spec.n_iter == 0 and not torch.equal(spec.means, fit.means)       # the graph's groups, no EM
    torch.testing.assert_close(model.prior_mu.detach(), spec.means)
    with pytest.raises(ValueError, match="gmm or spectral"):
        init_prior(model, images, method="kmeans")


def test_a_given_cluster_posterior_replaces_p_c_given_z_in_the_elbo():
    model = tiny("mlp")
    random_prior(model)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(4))
    own = model(x, eps=eps)
    given = model(x, eps=eps, gamma=own["gamma"])
    torch.testing.assert_close(given["kl"], own["kl"])
    onehot = F.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    fixed = model(x, eps=eps, gamma=onehot)
    mu, logvar = model.encode(x)
    log_pi, m, lv = model.prior()
    c = torch.tensor([0, 1, 2, 0, 1])
    direct = 0.5 * (lv[c] - logvar + (logvar.exp() + (mu - m[c]) ** 2) / lv[c].exp() - 1).sum(1) - log_pi[c]
    torch.testing.assert_close(fixed["kl"], direct)                # KL to the one given component, - log pi_c
    with pytest.raises(ValueError, match="N x 3"):
        model(x, eps=eps, gamma=onehot[:4])


def test_guiding_the_codes_to_given_groups_makes_the_mixture_find_them():
    from aigc.train.vade_init import guide_to_groups

    g = torch.Generator().manual_seed(5)
    images = (torch.rand(48, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    groups = torch.randint(0, 3, (48,), generator=g)               # groups the pictures do not show
    model = tiny("mlp")
    pretrain_autoencoder(model, images, epochs=2, batch_size=16)
    model.set_prior(torch.ones(3), 3 * torch.eye(3), torch.full((3, 3), 0.1))          # three apart
    before = cluster_accuracy(groups.numpy(), model.predict(images.float() / 255).numpy())
    prior = [p.detach().clone() for p in (model.prior_logits, model.prior_mu, model.prior_logvar)]
    losses = guide_to_groups(model, images, groups, 30, batch_size=16, lr=3e-3)
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert all(torch.equal(a, b.detach()) for a, b in zip(prior, (model.prior_logits, model.prior_mu, model.prior_logvar)))
    after = cluster_accuracy(groups.numpy(), model.predict(images.float() / 255).numpy())
    assert before < 0.7 and after > 0.9
    refit = gmm_from_partition(encode_means(model, images), groups, 3)                  # as the start refits
    assert cluster_accuracy(groups.numpy(), refit.assign(encode_means(model, images)).numpy()) > 0.9
    assert len(guide_to_groups(tiny("mlp"), images, groups, 1.5, batch_size=16)) == 2      # a last half pass
    with pytest.raises(ValueError, match="one group in 0..2"):
        guide_to_groups(model, images, groups[:10], 1)
    with pytest.raises(ValueError, match="spectral"):
        init_prior(model, images, guide_epochs=1)


def test_cluster_accuracy_matches_clusters_to_labels():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(labels, np.array([7, 7, 3, 3, 5, 5])) == 1.0
    # clusters x labels = [[1, 3], [2, 0]]: the best matching takes 3 + 2 of 6
    assert cluster_accuracy(np.array([0, 0, 0, 1, 1, 1]), np.array([1, 1, 0, 0, 0, 0])) == pytest.approx(5 / 6)
    # more clusters than labels: an unmatched cluster's points count as wrong
    assert cluster_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])) == pytest.approx(3 / 4)
    with pytest.raises(ValueError):
        cluster_accuracy(labels, labels[:3])


def test_nmi_against_a_hand_computation():
    labels, clusters = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    mi = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.375) + 0.25 * math.log(0.25 / 0.125)
    h_labels = math.log(2)
    h_clusters = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert nmi(labels, clusters) == pytest.approx(mi / ((h_labels + h_clusters) / 2))
    assert nmi(labels, clusters) == pytest.approx(0.3437110184854)   # sklearn's figure
    assert nmi(labels, np.array([4, 4, 9, 9])) == pytest.approx(1.0)
    assert nmi(labels, np.zeros(4, dtype=int)) == 0.0


def test_safetensors_state_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny("mlp")
    random_prior(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    other = tiny("mlp")
    other.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(other.cluster_posterior(x), model.cluster_posterior(x))


def test_save_and_load_pretrained(tmp_path):
    from aigc import checkpoint

    model = tiny("conv")
    random_prior(model)
    checkpoint.save_pretrained(model, tmp_path / "m")
    loaded = checkpoint.from_pretrained(tmp_path / "m")
    assert loaded.kind == "vade" and loaded.config == model.config
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded.cluster_posterior(x), model.eval().cluster_posterior(x))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(loaded.sample(2, cluster=1, generator=g()), model.sample(2, cluster=1, generator=g()))


# -- training through the loop ------------------------------------------------------------------------
def toy_data(n: int = 96, shape=(28, 28, 1)):
    from aigc.data.images import ImageData

    rng = np.random.default_rng(0)
    return ImageData("toy", (rng.random((n, *shape)) * 255).astype(np.uint8))


def run_vade(out, steps: int, pretrain: int = 4, resume=None, **extra):
    from aigc.train.loop import TrainOptions, train

    opts = TrainOptions(model="vade", data="toy", out=str(out), tiny=True, max_steps=steps, batch_size=16,
                        pretrain_steps=pretrain, gmm_n_init=1, progress=False, log_every=1,
                        sample_every=1000, ckpt_every=1000, **{"gmm_images": 64, **extra})
    return train(opts, data=toy_data(), resume=resume)


def test_trains_through_the_loop_with_a_phase_switch(tmp_path, one_thread):
    import json

    from aigc import checkpoint
    from aigc.fileio import read_config

    model_dir = run_vade(tmp_path / "run", 7, pretrain=3)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [0, 0, 0, 1, 1, 1, 1]
    assert "gmm_ll" in rows[3] and "kl" in rows[3] and "kl" not in rows[2]
    assert rows[3]["lr"] == pytest.approx(2e-3) and rows[0]["lr"] == pytest.approx(1e-3)
    state = checkpoint.load_state(tmp_path / "run" / "state.pt")
    assert state["objective"]["phase"] == "elbo" and state["objective"]["gmm"]["gmm_images"] == 64
    opts = json.loads((tmp_path / "run" / "options.json").read_text())
    assert opts["pretrain_steps"] == 3 and opts["gmm_images"] == 64
    assert read_config(model_dir)["kind"] == "vade"
    loaded = checkpoint.from_pretrained(model_dir)
    assert loaded.cluster_posterior(torch.rand(2, 1, 28, 28)).shape == (2, 3)


SPECTRAL = {"prior_init": "spectral", "pretrain_augment": 1.0, "prior_lr_scale": 0.0}
GUIDED = {**SPECTRAL, "prior_guide_epochs": 0.5}


@pytest.mark.parametrize("pretrain,extra", [(2, {}), (4, {}), (6, {}), (4, SPECTRAL), (6, SPECTRAL), (4, GUIDED)])
def test_resume_across_the_phase_switch_is_exact(tmp_path, pretrain, extra, one_thread):
    """The switch before, at and after the resumed step: 8 straight steps == 4 + resume + 4 (also with
    augmented pretraining and the spectral start, whose draws must repeat as well)."""
    from aigc import checkpoint

    straight = checkpoint.from_pretrained(run_vade(tmp_path / "a", 8, pretrain, **extra)).state_dict()
    run_vade(tmp_path / "b", 4, pretrain, **extra)
    resumed = checkpoint.from_pretrained(run_vade(tmp_path / "b", 8, pretrain, resume=tmp_path / "b",
                                                  **extra)).state_dict()
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_a_zero_prior_rate_keeps_the_mixture_as_initialised(tmp_path, one_thread):
    from aigc import checkpoint

    def prior(name, steps, scale):
        m = checkpoint.from_pretrained(run_vade(tmp_path / name, steps, 3, prior_lr_scale=scale))
        return [p.detach().clone() for p in (m.prior_logits, m.prior_mu, m.prior_logvar)], m.body.to_logvar.bias

    start, _ = prior("a", 4, 0.0)                      # the switch at step 3, one step at rate 0: as fitted
    kept, head = prior("b", 7, 0.0)
    moved, _ = prior("c", 7, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(start, kept))
    assert not all(torch.equal(a, b) for a, b in zip(start, moved))
    assert not torch.equal(head, checkpoint.from_pretrained(tmp_path / "a" / "model").body.to_logvar.bias)


def test_the_guided_start_moves_the_codes_at_the_switch(tmp_path, one_thread):
    from aigc import checkpoint

    plain = checkpoint.from_pretrained(run_vade(tmp_path / "a", 5, 4, **SPECTRAL))     # the switch, one ELBO step
    guided = checkpoint.from_pretrained(run_vade(tmp_path / "b", 5, 4, **GUIDED))
    assert not torch.equal(plain.body.to_mu.weight, guided.body.to_mu.weight)
    assert not torch.equal(plain.prior_mu, guided.prior_mu)                           # refitted to the moved codes


def test_the_switch_runs_once_when_it_is_the_first_step(tmp_path, one_thread, monkeypatch):
    """A run --init-from a VaDE with --pretrain-steps 0 switches on its first step; the FLOP count of
    the first step used to run the whole mixture fit (and its guided passes) a second time."""
    import json

    import aigc.train.objectives.vade as objective

    calls = []
    real = objective.init_prior
    monkeypatch.setattr(objective, "init_prior", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_vade(tmp_path / "run", 3, 0, **GUIDED)
    assert len(calls) == 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["flops_per_step"] > 0   # counted on step 1


def test_too_few_images_for_the_spectral_start_are_refused_before_pretraining(tmp_path, one_thread):
    with pytest.raises(ValueError, match="use at least 16, not 12"):       # tiny: 3 clusters, 15 neighbours
        run_vade(tmp_path / "run", 8, 4, prior_init="spectral", gmm_images=12)
    assert not (tmp_path / "run" / "state.pt").exists()


def test_objective_options_are_resolved_and_checked():
    from aigc.train.objectives.vade import VaDEObjective
    from aigc.train.options import VaDEOptions

    new = VaDEObjective.resolve(VaDEOptions(), 6500, fine_tune=False)
    assert new.pretrain_steps == 1500 and new.gmm_images == 10_000
    tune = VaDEObjective.resolve(VaDEOptions(), 6500, fine_tune=True)
    assert tune.pretrain_steps == 0 and tune.gmm_images == 0
    assert VaDEObjective.resolve(VaDEOptions(), 10 ** 9, fine_tune=False).pretrain_steps == 10_000
    for bad in ({"pretrain_steps": -1}, {"gmm_images": 10 ** 6}, {"lr_step_gamma": 0.0}, {"prior_init": "kmeans"},
                {"pretrain_augment": -1.0}, {"pretrain_augment": True}, {"prior_lr_scale": -0.5},
                {"prior_guide_epochs": 1.0}, {"prior_guide_epochs": -1.0, "prior_init": "spectral"},
                {"prior_guide_epochs": 21.0, "prior_init": "spectral"}):
        with pytest.raises(ValueError):
            VaDEOptions(**{"pretrain_steps": 1, "gmm_images": 1, **bad}).check()


# -- pipeline, metrics, upload groups ---------------------------------------------------------------
def test_image_pipeline_samples_clusters_and_encodes_to_a_posterior():
    from aigc.latent.directions import compute_directions
    from aigc.pipelines.image import ImagePipeline

    model = tiny("mlp")
    random_prior(model)
    pipe = ImagePipeline(model, name="t")
    assert pipe.clustered and pipe.n_clusters == 3
    assert pipe(4, seed=1, cluster=2).images.shape == (4, 28, 28, 1)
    z = pipe.latents(5, 1, cluster="2", temperature=0.0)
    torch.testing.assert_close(z, model.prior_mu[[2] * 5].detach())
    with pytest.raises(ValueError, match="cluster"):
        pipe(1, cluster=3)
    imgs = (torch.rand(3, 28, 28, 1) * 255).to(torch.uint8).numpy()
    s = pipe.encode(imgs)
    assert s.latents.shape == (3, 3) and s.posterior.shape == (3, 3)
    np.testing.assert_allclose(s.posterior, pipe.cluster_posterior(imgs), rtol=1e-5, atol=1e-6)
    assert pipe.cluster_weights().sum() == pytest.approx(1.0)
    d = compute_directions(model, torch.rand(20, 1, 28, 28), k=2)
    assert d.method == "pca-posterior-means" and len(d.dim_order) == 3
    assert compute_directions(model, None, k=2).vectors.shape == (2, 3)
    from aigc.kinds import build
    with pytest.raises(ValueError, match="not a VaDE"):
        ImagePipeline(build("vae", tiny=True)).latents(1, 0, cluster=0)


def test_cluster_metrics_score_the_test_images(one_thread):
    from aigc.eval import evaluate
    from aigc.kinds import build

    res = evaluate(tiny("mlp"), "mnist", metrics="cluster_acc,nmi", n=300)
    assert 0 < res["cluster_acc"] <= 1 and 0 <= res["nmi"] <= 1 and res["cluster_n"] == 300
    assert "Hungarian" in res["protocol"]
    with pytest.raises(ValueError, match="clustering model"):
        evaluate(build("vae", tiny=True), "mnist", metrics="nmi", n=10)


def test_group_upload_counts_groups_and_names_misfits_or_says_why_not():
    from aigc.data.uploads import format_report, group_upload

    model = tiny("mlp")
    random_prior(model)
    imgs = toy_data(60).images
    g = group_upload(imgs, None, model=model)
    assert g["fits"] and g["images"] == 60 and sum(x["size"] for x in g["groups"]) == 60
    assert g["groups_used"] == len(g["groups"]) <= 3
    assert [x["size"] for x in g["groups"]] == sorted((x["size"] for x in g["groups"]), reverse=True)
    assert all(0 < len(x["examples"]) <= 6 for x in g["groups"])
    m = g["misfits"]
    assert m["count"] >= len(m["examples"]) and all(e["why"] for e in m["examples"])
    report = {"kind": "text", "file": "x", "chars": 1, "distinct_chars": 1, "recommendation": "r", "groups": g}
    assert f"your 60 images fall into {g['groups_used']} group" in format_report(report)
    no = group_upload(toy_data(5, (32, 32, 3)).images, None, model=model)
    assert not no["fits"] and "32x32 colour" in no["reason"] and "28x28 grey" in no["reason"]
    assert "groups: your pictures are 32x32 colour" in format_report({**report, "groups": no})
    with pytest.raises(ValueError, match="uint8"):
        group_upload(imgs.astype(np.float32), None, model=model)
