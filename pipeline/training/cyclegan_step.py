"""The CycleGAN training step of the `train_cyclegan` stage (Zhu et al. 2017): LSGAN losses,
cycle consistency λ each way, identity loss for G_scan only, history pools, and the state
(networks, Adam, linear decay, samplers, pools, augmentation) it runs on. The networks are
G_scan, G_color, D_scan and D_color (`pipeline.models.scan_generator` maps them to the paper).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import CycleGANConfig
from pipeline.pixels import to_model_input
from pipeline.runtime import Runtime, unwrap
from pipeline.training.augment import RandomAffine
from pipeline.training.distributed import for_training
from pipeline.training.image_pool import ImagePool
from pipeline.training.losses import lsgan_loss
from pipeline.training.optim import adam, linear_decay
from pipeline.training.samplers import BatchSampler, read_ahead
from pipeline.training.state import TrainState


def build_cyclegan(cfg: CycleGANConfig):
    """The four networks, un-placed: (G_scan, G_color, D_scan, D_color)."""
    from pipeline.models.discriminator import DiscriminatorConfig, PatchDiscriminator
    from pipeline.models.scan_generator import GeneratorConfig, WeakGenerator

    def gen(cin, cout):
        return WeakGenerator(GeneratorConfig(in_channels=cin, out_channels=cout, width=cfg.generator_width,
                                             n_down=cfg.n_down, n_res=cfg.n_res, groups=cfg.groups,
                                             input_skip=cfg.generator_skip,
                                             white_point=cfg.scan_white_point if cout == 1 else 1.0))

    def disc(cin):
        return PatchDiscriminator(DiscriminatorConfig(in_channels=cin, width=cfg.disc_width,
                                                      attention=cfg.disc_attention, groups=cfg.groups,
                                                      highpass=cfg.disc_scan_highpass if cin == 1 else 0.0))

    return gen(3, 1), gen(1, 3), disc(1), disc(3)


def make_state(cfg: CycleGANConfig, lr: float, rt: Runtime, color: np.ndarray, scan: np.ndarray,
               seed: int) -> TrainState:
    torch.manual_seed(seed)
    nets = list(build_cyclegan(cfg))
    if cfg.init_from:  # fine-tuning: G_scan starts from a published scan generator
        from pipeline.models.scan_generator import load_scan_generator
        from pipeline.training.init_from import start_from

        start_from(nets[0], cfg.init_from, load_scan_generator, "cyclegan")
    nets = [for_training(m, rt, cfg.compile) for m in nets]
    g_scan, g_color, d_scan, d_color = nets
    betas = (cfg.beta1, cfg.beta2)
    opt_g = adam(list(g_scan.parameters()) + list(g_color.parameters()), lr, betas, rt)
    opt_d = adam(list(d_scan.parameters()) + list(d_color.parameters()), lr, betas, rt)
    decay = linear_decay(cfg.steps, cfg.decay_start)
    return TrainState(
        models={"G_scan": g_scan, "G_color": g_color, "D_scan": d_scan, "D_color": d_color},
        optimizers={"G": opt_g, "D": opt_d},
        schedulers={"G": torch.optim.lr_scheduler.LambdaLR(opt_g, decay),
                    "D": torch.optim.lr_scheduler.LambdaLR(opt_d, decay)},
        stateful={
            # on CUDA each batch read and pinned on a thread while the step before computes
            "color": read_ahead(BatchSampler(color, cfg.batch_size, seed + 1, rt.rank, rt.world_size, cfg.crop),
                                rt.device),
            "scan": read_ahead(BatchSampler(scan, cfg.batch_size, seed + 2, rt.rank, rt.world_size, cfg.crop),
                               rt.device),
            "pool_scan": ImagePool(cfg.pool_size, seed + 3),
            "pool_color": ImagePool(cfg.pool_size, seed + 4),
            # per-rank augmentation stream: each rank transforms its own slice
            "augment": RandomAffine(cfg.flip, cfg.rotate_deg, cfg.shift, seed + 5 + 1000 * rt.rank),
        },
    )


def cyclegan_step(state: TrainState, cfg: CycleGANConfig, rt: Runtime) -> dict[str, float]:
    """One generator update and one discriminator update; returns the losses."""
    g_scan, g_color = state.models["G_scan"], state.models["G_color"]
    d_scan, d_color = state.models["D_scan"], state.models["D_color"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    aug: RandomAffine = state.stateful["augment"]
    fmt = rt.memory_format
    color = aug(to_model_input(state.stateful["color"].next(), rt.device, fmt))  # (B, 3, H, W)
    scan = aug(to_model_input(state.stateful["scan"].next(), rt.device, fmt))  # (B, 1, H, W)
    lam = cfg.lambda_cycle

    # --- generators: D is frozen so G's backward doesn't compute D's gradients
    for d in (d_scan, d_color):
        d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with rt.autocast():
        b = color.shape[0]
        fake_color = g_color(scan)  # G_color(scan)
        # G_scan's three inputs in one batched call (every layer works per image, so this is
        # the same function as three calls, with a third of the launches): color, G_color(scan), scan as RGB
        g_in = [color, fake_color] + ([scan.expand(-1, 3, -1, -1)] if cfg.lambda_identity > 0 else [])
        g_out = g_scan(torch.cat(g_in).contiguous(memory_format=fmt))
        fake_scan, rec_scan = g_out[:b], g_out[b:2 * b]  # G_scan(color), G_scan(G_color(scan))
        # the frozen D's as bare networks: nothing of theirs to average over ranks here
        loss_adv = lsgan_loss(unwrap(d_scan)(fake_scan), True) + lsgan_loss(unwrap(d_color)(fake_color), True)
        noisy_scan = fake_scan + cfg.cycle_noise * torch.randn_like(fake_scan) if cfg.cycle_noise else fake_scan
        loss_cycle = (F.l1_loss(g_color(noisy_scan).float(), color.float())  # |G_color(G_scan(color) + noise) - color|
                      + F.l1_loss(rec_scan.float(), scan.float()))  # |G_scan(G_color(scan)) - scan|
        loss_idt = F.l1_loss(g_out[2 * b:].float(), scan.float()) \
            if cfg.lambda_identity > 0 else torch.zeros((), device=rt.device)
        loss_g = loss_adv + lam * loss_cycle + lam * cfg.lambda_identity * loss_idt
        if cfg.lambda_binary:  # the scans toward ink (-1) or paper (+1), as true scans are
            loss_bin = (1 - fake_scan.float().abs()).clamp(min=0).mean()
            loss_g = loss_g + cfg.lambda_binary * loss_bin
    loss_g.backward()  # DDP: the generators' gradients averaged over ranks during the backward
    opt_g.step()
    for d in (d_scan, d_color):
        d.requires_grad_(True)

    # --- discriminators on real vs pooled fakes; one forward per D (real and fake batched)
    opt_d.zero_grad(set_to_none=True)
    pooled_scan = state.stateful["pool_scan"].query(fake_scan.detach())
    pooled_color = state.stateful["pool_color"].query(fake_color.detach())
    with rt.autocast():
        pred_s = d_scan(torch.cat([scan, pooled_scan]))
        pred_c = d_color(torch.cat([color, pooled_color]))
        loss_d_scan = 0.5 * (lsgan_loss(pred_s[:b], True) + lsgan_loss(pred_s[b:], False))
        loss_d_color = 0.5 * (lsgan_loss(pred_c[:b], True) + lsgan_loss(pred_c[b:], False))
        loss_d = loss_d_scan + loss_d_color
    loss_d.backward()
    opt_d.step()
    return {"loss/G_adv": loss_adv.item(), "loss/cycle": loss_cycle.item(), "loss/identity": loss_idt.item(),
            "loss/D_scan": loss_d_scan.item(), "loss/D_color": loss_d_color.item(),
            **({"loss/binary": loss_bin.item()} if cfg.lambda_binary else {})}


def describe(cfg: CycleGANConfig, lr: float) -> dict:
    return {"cyclegan": asdict(cfg), "lr": lr}
