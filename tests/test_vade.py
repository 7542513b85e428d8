"""VaDE: the mixture prior, the ELBO, the GMM initialisation and the clustering metrics."""
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from aigc.eval.cluster import cluster_accuracy, nmi
from aigc.models.vade import VaDE, VaDEConfig
from aigc.models.vade_init import fit_diag_gmm, init_prior_from_gmm, pretrain_autoencoder

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


def test_pretrain_then_gmm_init_sets_the_prior():
    model = tiny("mlp")
    images = (torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 255).to(torch.uint8)
    losses = pretrain_autoencoder(model, images, epochs=2, batch_size=16)
    assert len(losses) == 2 and losses[1] < losses[0]
    fit = init_prior_from_gmm(model, images)
    torch.testing.assert_close(model.prior_mu.detach(), fit.means)
    torch.testing.assert_close(torch.softmax(model.prior_logits, 0).detach(), fit.weights / fit.weights.sum())
    with pytest.raises(ValueError, match="takes"):
        init_prior_from_gmm(model, torch.zeros(40, 1, 32, 32))


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


def _registered() -> bool:
    from aigc.kinds import KINDS

    return "vade" in KINDS


@pytest.mark.skipif(not _registered(), reason="kind not yet registered")
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
