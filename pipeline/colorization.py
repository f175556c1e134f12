"""The colorizer: a pix2pix-style conditional GAN (Isola et al. 2017) with the OnePunchGAN
attention U-Net generator, trained on (scan, color) pairs.

Loss: LSGAN adversarial + λ·L1 to the target. The discriminator is the 70×70 PatchGAN with
simple self-attention; conditional (it sees the scan concatenated with the image) by
default, unconditional (the original OnePunchGAN) as a param. Geometric augmentation is
applied to the channel-concatenated pair, so scan and color always move together.

Two variants train on the same colored images: `scangen` pairs (scangen(color), color) —
the method — and `greyscale` pairs (greyscale(color), color) — the thesis test's baseline.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import ColorizerConfig
from pipeline.gan import LUMA, RandomAffine, lsgan_loss
from pipeline.scangen import allreduce_gradients, broadcast_parameters
from pipeline.training import (BatchSampler, Runtime, TrainState, adam, linear_decay, place_module, run_batched,
                               to_model_input)

MODEL_FORMAT = "onepunchgan/colorizer"
MODEL_VERSION = 1
VARIANTS = ("scangen", "greyscale")


def greyscale_u8(color: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of uint8 (N, H, W, 3) -> uint8 (N, H, W, 1): the naive 'scan'."""
    w = np.array(LUMA, dtype=np.float32)
    return np.clip(np.rint(color.astype(np.float32) @ w), 0, 255).astype(np.uint8)[..., None]


class PairSampler:
    """Random (scan, color) batches drawn with one index set (pairs stay pairs).

    `scans=None` means greyscale(color), computed per batch (no second copy of the data).
    """

    def __init__(self, scans, colors, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        assert scans is None or len(scans) == len(colors), "pair arrays differ in length"
        self.scans, self.colors = scans, colors
        self.sampler = BatchSampler(colors, batch_size, seed, rank, world_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.sampler.next_indices()
        colors = np.ascontiguousarray(self.colors[idx])
        scans = greyscale_u8(colors) if self.scans is None else np.ascontiguousarray(self.scans[idx])
        return torch.from_numpy(scans), torch.from_numpy(colors)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def build_colorizer(cfg: ColorizerConfig) -> tuple[nn.Module, nn.Module]:
    from pipeline.colorizer import AttentionUNet, UNetConfig
    from pipeline.cyclegan import DiscriminatorConfig, PatchDiscriminator

    g = AttentionUNet(UNetConfig(in_channels=1, out_channels=3, width=cfg.width, mults=tuple(cfg.mults),
                                 n_attention=cfg.n_attention, groups=cfg.groups, input_skip=cfg.input_skip))
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=4 if cfg.conditional else 3, width=cfg.disc_width,
                                               attention=cfg.disc_attention, groups=cfg.groups))
    return g, d


def make_state(cfg: ColorizerConfig, lr: float, rt: Runtime, scans: np.ndarray, colors: np.ndarray,
               seed: int) -> TrainState:
    torch.manual_seed(seed)
    g, d = (place_module(m, rt) for m in build_colorizer(cfg))
    broadcast_parameters([g, d], rt)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = adam(g.parameters(), lr * cfg.g_lr_mult, betas, rt)
    opt_d = adam(d.parameters(), lr * cfg.d_lr_mult, betas, rt)
    decay = linear_decay(cfg.steps, cfg.decay_start)
    return TrainState(
        models={"G": g, "D": d},
        optimizers={"G": opt_g, "D": opt_d},
        schedulers={"G": torch.optim.lr_scheduler.LambdaLR(opt_g, decay),
                    "D": torch.optim.lr_scheduler.LambdaLR(opt_d, decay)},
        stateful={"pairs": PairSampler(scans, colors, cfg.batch_size, seed + 1, rt.rank, rt.world_size),
                  "augment": RandomAffine(cfg.flip, cfg.rotate_deg, cfg.shift, seed + 2 + 1000 * rt.rank)},
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

    def d_input(img: torch.Tensor) -> torch.Tensor:
        return torch.cat([scan, img], 1) if cfg.conditional else img

    # --- discriminator: real pairs vs generated pairs, one batched forward
    with rt.autocast():
        fake = g(scan)  # (B, 3, H, W)
    opt_d.zero_grad(set_to_none=True)
    with rt.autocast():
        b = scan.shape[0]
        pred = d(torch.cat([d_input(color), d_input(fake.detach())]))
        loss_d = 0.5 * (lsgan_loss(pred[:b], True) + lsgan_loss(pred[b:], False))
    loss_d.backward()
    allreduce_gradients(list(d.parameters()), rt)
    opt_d.step()

    # --- generator: fool D and stay close to the target
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with rt.autocast():
        loss_adv = lsgan_loss(d(d_input(fake)), True)
        loss_l1 = F.l1_loss(fake.float(), color.float())
        loss_g = loss_adv + cfg.lambda_l1 * loss_l1
    loss_g.backward()
    allreduce_gradients(list(g.parameters()), rt)
    opt_g.step()
    d.requires_grad_(True)
    return {"loss/G_adv": loss_adv.item(), "loss/L1": loss_l1.item(), "loss/D": loss_d.item(),
            "size": float(size)}


def colorize_arrays(model: nn.Module, scans: np.ndarray, rt: Runtime, batch: int = 64) -> np.ndarray:
    """uint8 (N, H, W, 1) scans -> uint8 (N, H, W, 3) colorizations."""
    return run_batched(model, scans, 3, rt, batch)


def publish_colorizer(g: nn.Module, path: str | Path, image_size: int, steps: int, variant: str) -> None:
    from pipeline.modelio import publish_model

    publish_model(g, path, MODEL_FORMAT, MODEL_VERSION, image_size=image_size, trained_steps=steps,
                  variant=variant, input="1-channel scan in [-1, 1]", output="RGB in [-1, 1]")


def load_colorizer(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    from pipeline.colorizer import build_unet
    from pipeline.modelio import load_model

    return load_model(path, MODEL_FORMAT, MODEL_VERSION, build_unet, "colorizer",
                      f"run `dvc repro` or `dvc pull {path}`", device)


def describe(cfg: ColorizerConfig, lr: float, variant: str) -> dict:
    return {"colorizer": asdict(cfg), "lr": lr, "variant": variant}
