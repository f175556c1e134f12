"""GAN objectives: least-squares GAN (Mao et al. 2017), as in CycleGAN; the hinge loss
(Lim & Ye 2017; SAGAN, BigGAN); and pix2pixHD's feature matching (Wang et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean squared distance of the score map to 1 (real) or 0 (fake)."""
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


def d_loss(kind: str, real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss on real and generated score maps."""
    if kind == "hinge":
        return 0.5 * (F.relu(1 - real_pred.float()).mean() + F.relu(1 + fake_pred.float()).mean())
    return 0.5 * (lsgan_loss(real_pred, True) + lsgan_loss(fake_pred, False))


def g_adv_loss(kind: str, fake_pred: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss on D's scores of its output."""
    if kind == "hinge":
        return -fake_pred.float().mean()
    return lsgan_loss(fake_pred, True)


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between D's activations on generated and on real inputs, layer by layer
    (pix2pixHD): a dense, stable signal that keeps the generator learning when D is sure."""
    return sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
