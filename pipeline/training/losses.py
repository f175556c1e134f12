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


# sRGB (D65) -> CIE XYZ, the matrix of IEC 61966-2-1 (scikit-image's `rgb2lab` uses the same)
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_D65_WHITE = (0.95047, 1.0, 1.08883)
LAB_SCALE = 50.0  # Lab units per unit of the loss: L's 0..100 spans 2, as [-1, 1] RGB does


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> CIE Lab (L in 0..100), differentiable everywhere
    (the sRGB decoding and the cube root are linear near 0, as the standard defines them);
    scikit-image's `rgb2lab` to within float32 rounding."""
    c = rgb.float().clamp(0, 1)
    linear = torch.where(c > 0.04045, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = torch.tensor(_RGB_TO_XYZ, dtype=c.dtype, device=c.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, linear)
    xyz = xyz / torch.tensor(_D65_WHITE, dtype=c.dtype, device=c.device)[:, None, None]
    eps = 0.008856
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, space: str = "rgb") -> torch.Tensor:
    """Mean absolute difference of images in [-1, 1]: per RGB channel, or per CIE Lab
    coordinate over `LAB_SCALE` (close to ΔE76, the perceptual distance the evaluation's
    ΔE2000 refines; `colorizer.l1_space`)."""
    if space == "lab":
        return F.l1_loss(rgb_to_lab((pred.float() + 1) / 2), rgb_to_lab((target.float() + 1) / 2)) / LAB_SCALE
    return F.l1_loss(pred.float(), target.float())
