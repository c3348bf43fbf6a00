"""The flow autoencoder network (plain or variational), with entity embeddings.

Input of one flow: ``cat`` (int64, (B, n_cat)) vocabulary indices, each looked up in its own
``nn.Embedding(cardinality, d)`` with ``d = min(max_emb, round(1.6 * cardinality ** 0.56))``;
and ``num`` (float32, (B, n_num)) standardised numeric features. The concatenation goes through
the encoder MLP to a latent code of ``latent`` dimensions (a mean and a log-variance when
``variational``); the decoder maps the code back to the numeric fields (Gaussian, unit variance:
squared error) and to logits over each categorical vocabulary (cross-entropy).

Depth: ``shallow`` is one linear map each way (input -> code -> outputs), ``deep`` has hidden
layers ``HIDDEN["deep"]`` with ReLU on both sides.

Per-flow reconstruction loss (nats-like, summed over fields): ``0.5 * sum((num - num_hat)^2) +
sum_f CE_f``. The VAE adds ``KL(q(z|x) || N(0, I))``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HIDDEN: dict[str, tuple[int, ...]] = {"shallow": (), "deep": (64, 32)}


def embedding_dim(cardinality: int, max_emb: int = 16) -> int:
    """Width of a field's entity embedding (fast.ai's rule of thumb, capped)."""
    return int(max(2, min(max_emb, round(1.6 * cardinality**0.56))))


def _mlp(sizes: list[int], last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FlowAutoencoder(nn.Module):
    """Autoencoder over one flow's fields (module docstring)."""

    def __init__(
        self,
        cardinalities: list[int],
        n_num: int,
        latent: int = 8,
        depth: str = "deep",
        variational: bool = False,
        max_emb: int = 16,
    ) -> None:
        super().__init__()
        if depth not in HIDDEN:
            raise ValueError(f"depth must be one of {sorted(HIDDEN)}, got {depth!r}")
        self.cardinalities = list(cardinalities)
        self.n_num = int(n_num)
        self.latent = int(latent)
        self.variational = bool(variational)
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, embedding_dim(c, max_emb)) for c in self.cardinalities
        )
        d_in = sum(e.embedding_dim for e in self.embeddings) + self.n_num
        hidden = list(HIDDEN[depth])
        d_code = self.latent * (2 if self.variational else 1)
        self.encoder = _mlp([d_in, *hidden, d_code])
        d_out = self.n_num + sum(self.cardinalities)
        self.decoder = _mlp([self.latent, *hidden[::-1], d_out])

    def _inputs(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        parts = [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat([*parts, num], dim=1)

    def encode(self, cat: torch.Tensor, num: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of the code, each (B, latent); log-variance 0 when plain."""
        h = self.encoder(self._inputs(cat, num))
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-10.0, 10.0)
        return h, torch.zeros_like(h)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Numeric means (B, n_num) and one logit tensor (B, cardinality) per categorical."""
        out = self.decoder(z)
        num_hat = out[:, : self.n_num]
        logits = list(torch.split(out[:, self.n_num :], self.cardinalities, dim=1))
        return num_hat, logits

    def recon_loss(self, cat: torch.Tensor, num: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-flow reconstruction loss of code ``z``: shape (B,)."""
        num_hat, logits = self.decode(z)
        loss = 0.5 * ((num - num_hat) ** 2).sum(dim=1)
        for j, lg in enumerate(logits):
            loss = loss + F.cross_entropy(lg, cat[:, j], reduction="none")
        return loss

    def loss(
        self,
        cat: torch.Tensor,
        num: torch.Tensor,
        generator: torch.Generator | None = None,
        beta: float = 1.0,
    ) -> torch.Tensor:
        """Per-flow training loss (B,): reconstruction, plus ``beta * KL`` when variational.

        The VAE's reparameterisation noise comes from ``generator`` (deterministic runs).
        """
        mu, logvar = self.encode(cat, num)
        if not self.variational:
            return self.recon_loss(cat, num, mu)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return self.recon_loss(cat, num, z) + beta * kl
