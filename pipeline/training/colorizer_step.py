"""The pix2pix-style cGAN training step of the `train_colorizer` stage (Isola et al. 2017):
an LSGAN or hinge adversarial loss + λ·L1 (+ pix2pixHD feature matching), the
discriminator conditional on the scan by default and optionally spectrally normalised;
and the state it runs on. With `hints_max` > 0 the generator also sees color hints sampled
from the target (`pipeline.training.hint_sampler`); the discriminator judges the colors against the
scan alone.
The `greyscale` variant (the thesis test's baseline) trains on greyscale(color) scans.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import ColorizerConfig
from pipeline.models.colorizer import HINT_CHANNELS
from pipeline.pixels import to_model_input, to_uint8_image
from pipeline.runtime import Runtime, unwrap
from pipeline.training.augment import RandomAffine
from pipeline.training.distributed import for_training
from pipeline.training.hint_sampler import HintSampler
from pipeline.training.losses import d_loss, feature_matching_loss, g_adv_loss, l1_loss
from pipeline.training.optim import adam, linear_decay
from pipeline.training.samplers import PairSampler, read_ahead
from pipeline.training.scan_style import ScanStyle
from pipeline.training.state import TrainState

VARIANTS = ("scangen", "greyscale")


def build_colorizer(cfg: ColorizerConfig) -> tuple[nn.Module, nn.Module]:
    from pipeline.models.colorizer import AttentionUNet, UNetConfig
    from pipeline.models.discriminator import DiscriminatorConfig, PatchDiscriminator

    g = AttentionUNet(UNetConfig(in_channels=1 + (HINT_CHANNELS if cfg.hints_max else 0), out_channels=3,
                                 width=cfg.width, mults=tuple(cfg.mults),
                                 n_attention=cfg.n_attention, groups=cfg.groups, input_skip=cfg.input_skip))
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=4 if cfg.conditional else 3, width=cfg.disc_width,
                                               attention=cfg.disc_attention, groups=cfg.groups,
                                               spectral_norm=cfg.disc_spectral_norm))
    return g, d


def make_state(cfg: ColorizerConfig, lr: float, rt: Runtime, scans: np.ndarray, colors: np.ndarray,
               seed: int) -> TrainState:
    torch.manual_seed(seed)
    g, d = build_colorizer(cfg)
    if cfg.init_from:  # fine-tuning: the generator starts from a published colorizer
        from pipeline.models.colorizer import load_colorizer
        from pipeline.training.init_from import start_from

        start_from(g, cfg.init_from, load_colorizer, "colorizer")
    g, d = for_training(g, rt, cfg.compile), for_training(d, rt, cfg.compile)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = adam(g.parameters(), lr * cfg.g_lr_mult, betas, rt)
    opt_d = adam(d.parameters(), lr * cfg.d_lr_mult, betas, rt)
    decay = linear_decay(cfg.steps, cfg.decay_start)
    ema = {}
    if cfg.ema:  # a running average of G's weights, updated after each step, is what gets published
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema["G_ema"] = AveragedModel(unwrap(g), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    return TrainState(
        models={"G": g, "D": d, **ema},
        optimizers={"G": opt_g, "D": opt_d},
        schedulers={"G": torch.optim.lr_scheduler.LambdaLR(opt_g, decay),
                    "D": torch.optim.lr_scheduler.LambdaLR(opt_d, decay)},
        stateful={"pairs": read_ahead(PairSampler(scans, colors, cfg.batch_size, seed + 1, rt.rank, rt.world_size,
                                                  cfg.crop), rt.device),
                  "augment": RandomAffine(cfg.flip, cfg.rotate_deg, cfg.shift, seed + 2 + 1000 * rt.rank),
                  **({"hints": HintSampler(seed + 3 + 1000 * rt.rank, cfg.hints_p, cfg.hints_max, cfg.hint_patch,
                                           cfg.hint_recolor)}
                     if cfg.hints_max else {}),
                  **({"scan_style": ScanStyle(cfg.scan_style, seed + 4 + 1000 * rt.rank)} if cfg.scan_style else {})},
    )


def current_size(cfg: ColorizerConfig, step: int, full: int) -> int:
    """Progressive resolution: equal shares of the steps per size (the last is `full`)."""
    sizes = list(cfg.progressive_sizes) or [full]
    k = min(len(sizes) - 1, step * len(sizes) // max(1, cfg.steps))
    return sizes[k]


def colorizer_step(state: TrainState, cfg: ColorizerConfig, rt: Runtime) -> dict[str, float]:
    """One discriminator update, then one generator update (pix2pix order)."""
    g, d = state.models["G"], state.models["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    scan_u8, color_u8 = state.stateful["pairs"].next()
    fmt = rt.memory_format
    pair = torch.cat([to_model_input(scan_u8, rt.device, fmt), to_model_input(color_u8, rt.device, fmt)], 1)
    pair = state.stateful["augment"](pair)  # one transform for both members: (B, 1 + 3, H, W)
    size = current_size(cfg, state.step, pair.shape[-1])
    if size != pair.shape[-1]:
        pair = F.interpolate(pair, size=(size, size), mode="area").contiguous(memory_format=fmt)
    scan, color = pair[:, :1], pair[:, 1:]
    if "scan_style" in state.stateful:  # some scans re-inked as lines + screentone
        scan = state.stateful["scan_style"](scan)
    g_input = scan
    if "hints" in state.stateful:  # sampled from the augmented target, spread over the scan's regions
        hints, target = state.stateful["hints"](_as_u8(scan), color_u8 := _as_u8(color))
        g_input = torch.cat([scan, to_model_input(torch.from_numpy(hints), rt.device, fmt)], 1)
        if target is not color_u8:  # recolored hints: the target follows them
            color = to_model_input(torch.from_numpy(target), rt.device, fmt)

    def d_input(img: torch.Tensor) -> torch.Tensor:
        return torch.cat([scan, img], 1) if cfg.conditional else img

    # --- discriminator: real pairs vs generated pairs, one batched forward
    with rt.autocast():
        fake = g(g_input)  # (B, 3, H, W)
    opt_d.zero_grad(set_to_none=True)
    with rt.autocast():
        b = scan.shape[0]
        pred = d(torch.cat([d_input(color), d_input(fake.detach())]))
        loss_d = d_loss(cfg.gan_loss, pred[:b], pred[b:])
    loss_d.backward()  # DDP: D's gradients averaged over ranks during the backward
    opt_d.step()

    # --- generator: fool D and stay close to the target
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with rt.autocast():
        losses = {}
        if cfg.lambda_fm > 0:  # D's features on the real pair are the target (no gradient)
            with torch.no_grad():
                _, real_feats = unwrap(d).forward_with_features(d_input(color))
            pred_fake, fake_feats = unwrap(d).forward_with_features(d_input(fake))
            losses["loss/FM"] = feature_matching_loss(fake_feats, real_feats)
        else:  # D frozen: the bare network (nothing of D's to average)
            pred_fake = unwrap(d)(d_input(fake))
        loss_adv = g_adv_loss(cfg.gan_loss, pred_fake)
        if cfg.composite_l1:  # the page as composed against the target: in [0, 1], back to [-1, 1]
            factor = composite_factors(scan).to(fake.device, fake.dtype)
            loss_l1 = l1_loss((fake.float() + 1) * factor - 1, color, cfg.l1_space)
        else:
            loss_l1 = l1_loss(fake, color, cfg.l1_space)
        loss_g = loss_adv + cfg.lambda_l1 * loss_l1 + cfg.lambda_fm * losses.get("loss/FM", 0.0)
    loss_g.backward()  # DDP: G's gradients averaged over ranks during the backward
    opt_g.step()
    if "G_ema" in state.models:
        state.models["G_ema"].update_parameters(unwrap(g))
    d.requires_grad_(True)
    return {"loss/G_adv": loss_adv.item(), "loss/L1": loss_l1.item(), "loss/D": loss_d.item(),
            **{k: v.item() for k, v in losses.items()}, "size": float(size)}


def composite_factors(scan: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) scans in [-1, 1] -> (B, 1, H, W) float32 on the CPU: each scan's
    `composite_factor`, what the page's composition multiplies the colors by."""
    from pipeline.colorist.ink import composite_factor

    u8 = _as_u8(scan)[..., 0]  # (B, H, W)
    return torch.from_numpy(np.stack([composite_factor(s) for s in u8]))[:, None]


def _as_u8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C) on the CPU."""
    return to_uint8_image(x).permute(0, 2, 3, 1).cpu().numpy()


def published_generator(state: TrainState) -> nn.Module:
    """The network a stage publishes and samples: G's running average (`colorizer.ema`) or G."""
    return state.models["G_ema"].module if "G_ema" in state.models else unwrap(state.models["G"])


def describe(cfg: ColorizerConfig, lr: float, variant: str) -> dict:
    return {"colorizer": asdict(cfg), "lr": lr, "variant": variant}
