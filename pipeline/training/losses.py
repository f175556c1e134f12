"""GAN objectives: least-squares GAN (Mao et al. 2017), as in CycleGAN; the hinge loss
(Lim & Ye 2017; SAGAN, BigGAN); and pix2pixHD's feature matching (Wang et al. 2018).
"""

from __future__ import annotations

import math

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


def delta_e_2000(lab1: torch.Tensor, lab2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """CIEDE2000 (Sharma, Wu & Dalal 2005; kL = kC = kH = 1) between (B, 3, H, W) CIE Lab
    images, per pixel: scikit-image's `deltaE_ciede2000` to within float rounding, written
    in torch so that it has a gradient. The square roots take `eps` under them and the hue
    angle of a colour with no chroma is 0 (its hue terms vanish there), so the gradient is
    finite everywhere, also where the two colours are equal or grey."""
    l1, a1, b1 = lab1.float().unbind(1)
    l2, a2, b2 = lab2.float().unbind(1)
    c_bar7 = (0.5 * (torch.sqrt(a1 * a1 + b1 * b1 + eps) + torch.sqrt(a2 * a2 + b2 * b2 + eps))) ** 7
    g = 0.5 * (1 - torch.sqrt(c_bar7 / (c_bar7 + 25.0 ** 7) + eps))
    a1, a2 = a1 * (1 + g), a2 * (1 + g)
    c1, c2 = torch.sqrt(a1 * a1 + b1 * b1 + eps), torch.sqrt(a2 * a2 + b2 * b2 + eps)

    def hue(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # in [0, 2π); 0 with no chroma
        grey = (a.abs() < 1e-4) & (b.abs() < 1e-4)
        h = torch.atan2(torch.where(grey, torch.zeros_like(b), b), torch.where(grey, torch.ones_like(a), a))
        return torch.remainder(h, 2 * math.pi)

    h1, h2 = hue(a1, b1), hue(a2, b2)
    l_bar = 0.5 * (l1 + l2)
    sl = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    c_bar = 0.5 * (c1 + c2)
    l_term = (l2 - l1) / sl
    c_term = (c2 - c1) / (1 + 0.045 * c_bar)
    h_diff, h_sum = h2 - h1, h1 + h2
    dh = h_diff - 2 * math.pi * (h_diff > math.pi) + 2 * math.pi * (h_diff < -math.pi)
    h_bar = h_sum + 2 * math.pi * ((h_diff.abs() > math.pi) & (h_sum < 2 * math.pi)) \
        - 2 * math.pi * ((h_diff.abs() > math.pi) & (h_sum >= 2 * math.pi))
    h_bar = 0.5 * h_bar
    t = (1 - 0.17 * torch.cos(h_bar - math.radians(30)) + 0.24 * torch.cos(2 * h_bar)
         + 0.32 * torch.cos(3 * h_bar + math.radians(6)) - 0.20 * torch.cos(4 * h_bar - math.radians(63)))
    h_term = 2 * torch.sqrt(c1 * c2) * torch.sin(dh / 2) / (1 + 0.015 * c_bar * t)
    c_bar7 = c_bar ** 7
    rc = 2 * torch.sqrt(c_bar7 / (c_bar7 + 25.0 ** 7) + eps)
    dtheta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    r_term = -torch.sin(2 * dtheta) * rc * c_term * h_term
    return torch.sqrt((l_term ** 2 + c_term ** 2 + h_term ** 2 + r_term).clamp_min(0) + eps)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, space: str = "rgb") -> torch.Tensor:
    """Mean absolute difference of images in [-1, 1]: per RGB channel, or per CIE Lab
    coordinate over `LAB_SCALE` (close to ΔE76, the perceptual distance the evaluation's
    ΔE2000 refines; `colorizer.l1_space`), or the mean CIEDE2000 itself over `LAB_SCALE`
    (`de2000`: the distance the evaluation measures, per pixel)."""
    if space == "de2000":
        return delta_e_2000(rgb_to_lab((pred.float() + 1) / 2), rgb_to_lab((target.float() + 1) / 2)).mean() / LAB_SCALE
    if space == "lab":
        return F.l1_loss(rgb_to_lab((pred.float() + 1) / 2), rgb_to_lab((target.float() + 1) / 2)) / LAB_SCALE
    return F.l1_loss(pred.float(), target.float())
