"""VaDE: a VAE whose prior is a mixture of Gaussians (Jiang et al., IJCAI 2017).

p(c) = Cat(pi), p(z|c) = N(mu_c, diag(sigma2_c)), p(x|z) = Bernoulli(decoder(z)). The encoder
gives q(z|x) = N(mu, diag(sigma2)) and the cluster posterior is approximated as in the paper by
gamma = q(c|x) = p(c|z). The network body is the shipped conv VAE's (28x28 grey, 32/64 colour) or
the paper's MLP (784-500-500-2000-D); the prior adds K logits, K x D means and K x D log-variances.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from aigc.limits import check_int
from aigc.models.base import GenerativeModel
from aigc.models.vae import VAE, VAEConfig

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VaDEConfig:
    resolution: int = 28        # 28 (MNIST-like), 32 or 64
    channels: int = 1           # 1 grey, 3 colour
    latent_dim: int = 10        # the paper's D for MNIST: one dimension per expected cluster
    n_clusters: int = 10        # K: the number of mixture components (clusters)
    arch: str = "mlp"           # "mlp": the paper's dense body, ~5x cheaper than "conv" per image on CPU
    mlp_hidden: list = field(default_factory=lambda: [500, 500, 2000])   # the paper's encoder widths
    width: int = 32             # conv body: channels of the first conv, as the conv VAE
    hidden: int = 512           # conv body: the dense layer between conv features and the latent
    num_classes: int = 0        # clusters are not classes: sampling takes `cluster`, not labels
    class_names: list = field(default_factory=list)


class MLPBody(nn.Module):
    """The paper's dense encoder/decoder: x -> 500 -> 500 -> 2000 -> (mu, logvar); z mirrors back."""

    def __init__(self, c: VaDEConfig):
        super().__init__()
        self.shape = (c.channels, c.resolution, c.resolution)
        n_in = c.channels * c.resolution ** 2
        dims = [n_in] + [int(h) for h in c.mlp_hidden]
        enc = []
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(nn.Flatten(), *enc)
        self.to_mu = nn.Linear(dims[-1], c.latent_dim)
        self.to_logvar = nn.Linear(dims[-1], c.latent_dim)
        back = [c.latent_dim] + dims[::-1][:-1]
        dec = []
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.decoder = nn.Sequential(*dec, nn.Linear(back[-1], n_in))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.shape)


def _body(c: VaDEConfig) -> nn.Module:
    if c.arch == "mlp":
        if not c.mlp_hidden or any(int(h) < 1 for h in c.mlp_hidden):
            raise ValueError("mlp_hidden must list at least one positive layer width")
        return MLPBody(c)
    if c.arch == "conv":
        return VAE(VAEConfig(resolution=c.resolution, channels=c.channels, latent_dim=c.latent_dim,
                             width=c.width, hidden=c.hidden))
    raise ValueError(f"unknown arch {c.arch!r}; use 'mlp' or 'conv'")


class VaDE(GenerativeModel):
    kind = "vade"

    def __init__(self, config: VaDEConfig):
        super().__init__(config)
        c = config
        if c.resolution not in (28, 32, 64):
            raise ValueError(f"unsupported resolution {c.resolution}; use 28, 32 or 64")
        if c.n_clusters < 1 or c.latent_dim < 1:
            raise ValueError("n_clusters and latent_dim must be at least 1")
        self.body = _body(c)
        k, d = c.n_clusters, c.latent_dim
        self.prior_logits = nn.Parameter(torch.zeros(k))
        # spread starting means so an untrained model's components differ; a GMM fit replaces them
        self.prior_mu = nn.Parameter(torch.randn(k, d, generator=torch.Generator().manual_seed(0)))
        self.prior_logvar = nn.Parameter(torch.zeros(k, d))

    @property
    def n_clusters(self) -> int:
        return self.config.n_clusters

    # -- the networks ------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] -> (mu, logvar) of q(z|x)."""
        return self.body.encode(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.body.decode_logits(z)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    # -- the mixture prior -------------------------------------------------------------------------
    def prior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log pi: K, means: K x D, log-variances: K x D), in fp32."""
        return (F.log_softmax(self.prior_logits.float(), 0), self.prior_mu.float(),
                self.prior_logvar.float().clamp(-12.0, 8.0))

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c) + log p(z|c) for every component: N x K."""
        log_pi, m, lv = self.prior()
        z = z.float().unsqueeze(-2)                                          # ..., 1, D
        log_pz_c = -0.5 * (LOG_2PI + lv + (z - m).pow(2) / lv.exp()).sum(-1)
        return log_pi + log_pz_c

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """The mixture's log-density log p(z) = logsumexp_c [log pi_c + log N(z; mu_c, sigma2_c)]."""
        return torch.logsumexp(self.log_joint(z), -1)

    def set_prior(self, weights, means, variances) -> None:
        """Copy a fitted mixture (K weights, K x D means, K x D variances) into the prior."""
        w = torch.as_tensor(weights, dtype=torch.float32)
        m = torch.as_tensor(means, dtype=torch.float32)
        v = torch.as_tensor(variances, dtype=torch.float32)
        k, d = self.n_clusters, self.latent_dim
        if w.shape != (k,) or m.shape != (k, d) or v.shape != (k, d):
            raise ValueError(f"a prior for this model needs {k} weights and {k} x {d} means and variances")
        if not (w > 0).all() or not (v > 0).all() or not torch.isfinite(m).all():
            raise ValueError("mixture weights and variances must be positive, means finite")
        with torch.no_grad():
            self.prior_logits.copy_((w / w.sum()).log())
            self.prior_mu.copy_(m)
            self.prior_logvar.copy_(v.log())

    # -- clustering --------------------------------------------------------------------------------
    @torch.no_grad()
    def cluster_posterior(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """gamma = q(c|x), N x K, taken at the mean of q(z|x) (deterministic)."""
        out = []
        for i in range(0, x.shape[0], batch):
            mu, _ = self.encode(x[i:i + batch].to(self.device))
            out.append(torch.softmax(self.log_joint(mu), -1))
        return torch.cat(out, 0) if out else torch.zeros(0, self.n_clusters)

    def predict(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """The most probable cluster of each image: N ids in 0..K-1."""
        return self.cluster_posterior(x, batch).argmax(-1)

    # -- the ELBO (the paper's eq. 17) -------------------------------------------------------------
    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None, gamma: torch.Tensor | None = None) -> dict:
        """Negative ELBO pieces per image (nats) for pixels x in [0, 1] (binarised or not).

        rec = -log p(x|z) with z = mu + eps * sigma (one sample, eps drawn here if not given);
        kl = KL(q(z, c|x) || p(z, c)) = sum_c gamma_c KL(q(z|x) || p(z|c)) + KL(gamma || pi),
        with gamma = p(c|z) at the same z (eq. 16), or the given q(c|x) (N x K rows summing to 1,
        e.g. one-hot groups found elsewhere). rec + kl is the negative of eq. 17."""
        mu, logvar = self.encode(x)
        mu, logvar = mu.float(), logvar.float()   # the KL and the noise stay in fp32 under autocast
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar)
        logits = self.decode_logits(z)
        rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)
        log_pi, m, lv = self.prior()
        if gamma is None:
            log_gamma = F.log_softmax(self.log_joint(z), -1)                # N, K
            gamma = log_gamma.exp()
        else:
            gamma = gamma.to(mu.device, torch.float32)
            if gamma.shape != (mu.shape[0], self.n_clusters):
                raise ValueError(f"gamma must be N x {self.n_clusters}, not {tuple(gamma.shape)}")
            log_gamma = gamma.clamp_min(1e-30).log()                          # 0 log 0 = 0 below
        diff2 = (mu.unsqueeze(1) - m).pow(2)                                 # N, K, D
        kl_comp = 0.5 * (lv - logvar.unsqueeze(1) + (logvar.exp().unsqueeze(1) + diff2) / lv.exp() - 1.0).sum(-1)
        kl_z = (gamma * kl_comp).sum(1)
        kl_c = (gamma * (log_gamma - log_pi)).sum(1)
        return {"rec": rec, "kl": kl_z + kl_c, "kl_z": kl_z, "kl_c": kl_c, "gamma": gamma}

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 1000, chunk: int = 250,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted lower bound on log p(x) (Burda et al. 2016) with the mixture prior,
        nats per image, for binary images x; k samples from q(z|x)."""
        mu, logvar = self.encode(x)
        mu, std = mu.float(), torch.exp(0.5 * logvar.float())
        parts = []
        for start in range(0, k, chunk):
            kk = min(chunk, k - start)
            eps = torch.randn((kk,) + mu.shape, generator=generator).to(mu.device)
            z = mu + eps * std                                               # kk, N, D
            logits = self.decode_logits(z.reshape(-1, mu.shape[1]))
            xr = x.unsqueeze(0).expand(kk, *x.shape).reshape(-1, *x.shape[1:])
            log_px = -F.binary_cross_entropy_with_logits(logits.float(), xr.float(),
                                                         reduction="none").flatten(1).sum(1).view(kk, -1)
            log_qz = (-0.5 * eps.pow(2) - 0.5 * LOG_2PI - torch.log(std)).sum(-1)
            parts.append(log_px + self.log_prior(z) - log_qz)
        return torch.logsumexp(torch.cat(parts, 0), 0) - math.log(k)

    # -- sampling ----------------------------------------------------------------------------------
    def check_cluster(self, cluster) -> int | None:
        """A cluster id (None: the whole mixture), refused with one line when out of range."""
        return None if cluster is None else check_int(cluster, 0, self.n_clusters - 1, "cluster")

    def mixture_latent(self, eps: torch.Tensor, clusters: torch.Tensor) -> torch.Tensor:
        """Standard-normal eps (N x D) -> z = mu_c + sigma_c * eps for each row's component c."""
        _, m, lv = self.prior()
        clusters = torch.as_tensor(clusters, dtype=torch.long, device=m.device).reshape(-1)
        if clusters.numel() and ((clusters < 0).any() or (clusters >= self.n_clusters).any()):
            raise ValueError(f"cluster must be a whole number from 0 to {self.n_clusters - 1}")
        eps = eps.to(m.device, torch.float32)
        return m[clusters] + torch.exp(0.5 * lv[clusters]) * eps

    @torch.no_grad()
    def sample_clusters(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n component ids drawn from the mixture weights pi."""
        pi = torch.softmax(self.prior_logits.detach().float().cpu(), 0)
        return torch.multinomial(pi, n, replacement=True, generator=generator)

    @torch.no_grad()
    def sample_latent(self, n: int, generator: torch.Generator | None = None, cluster=None,
                      temperature: float = 1.0) -> torch.Tensor:
        """n latents from the prior: from component `cluster`, or from the mixture when None.
        `temperature` scales each component's spread around its mean."""
        c = self.check_cluster(cluster)
        eps = torch.randn(n, self.latent_dim, generator=generator)
        ids = torch.full((n,), c, dtype=torch.long) if c is not None else self.sample_clusters(n, generator)
        return self.mixture_latent(eps * float(temperature), ids)

    @torch.no_grad()
    def sample(self, n: int, *, labels=None, cluster=None, generator: torch.Generator | None = None,
               z: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw n images in [0, 1] from one cluster (`cluster`) or from the whole mixture."""
        self.check_labels(labels, n)
        if z is None:
            z = self.sample_latent(n, generator, cluster, temperature)
        was_training = self.training
        self.eval()
        try:
            return self.decode(z.to(self.device))
        finally:
            self.train(was_training)
