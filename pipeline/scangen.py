"""The scan generator: CycleGAN training (colored <-> scan, unpaired) and its use.

Zhu et al. 2017 (CycleGAN) with the OnePunchGAN choices: deliberately weak generators,
LSGAN, cycle-consistency λ=10 each way, identity 0.5·λ, a 50-image history pool per
discriminator, Adam(0.5, 0.999), lr linear decay over the second half. Only the
color->scan generator ("G_A" in the paper's code) is published.

Names: G_scan = G_A: color -> scan (3 -> 1 channel); G_color = G_B: scan -> color;
D_scan = D_A judges scans, D_color = D_B judges colored images.

Identity loss: a scan, shown to G_scan as an RGB image, must come back unchanged (line
art is a fixed point of de-coloring). The mirror term, G_color(greyscale(color)) = color,
would teach the discarded G_color greyscale colorization — exactly the shortcut this
method exists to avoid — so it is left out.

Data parallelism: gradients are averaged across torchrun ranks with one flattened
all-reduce per optimiser step (DDP's semantics; the DDP wrapper itself does not allow a
network to be used several times in one backward, as the cycle terms need).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pipeline.config import CycleGANConfig
from pipeline.gan import ImagePool, RandomAffine, lsgan_loss, luma
from pipeline.training import (BatchSampler, Runtime, TrainState, adam, linear_decay, place_module, run_batched,
                               to_model_input)

MODEL_FORMAT = "onepunchgan/scan_generator"
MODEL_VERSION = 1


# --------------------------------------------------------------------------- building


def build_cyclegan(cfg: CycleGANConfig):
    """The four networks, un-placed: (G_scan, G_color, D_scan, D_color)."""
    from pipeline.cyclegan import (DiscriminatorConfig, GeneratorConfig, PatchDiscriminator,
                                   WeakGenerator)

    def gen(cin, cout):
        return WeakGenerator(GeneratorConfig(in_channels=cin, out_channels=cout, width=cfg.generator_width,
                                             n_down=cfg.n_down, n_res=cfg.n_res, groups=cfg.groups,
                                             input_skip=cfg.generator_skip))

    def disc(cin):
        return PatchDiscriminator(DiscriminatorConfig(in_channels=cin, width=cfg.disc_width,
                                                      attention=cfg.disc_attention, groups=cfg.groups))

    return gen(3, 1), gen(1, 3), disc(1), disc(3)


def allreduce_gradients(params: list[nn.Parameter], rt: Runtime) -> None:
    """Average gradients over ranks (no-op in a single process)."""
    if not rt.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= rt.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def broadcast_parameters(modules: list[nn.Module], rt: Runtime) -> None:
    """Start every rank from rank 0's weights."""
    if rt.distributed:
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, src=0)


def make_state(cfg: CycleGANConfig, lr: float, rt: Runtime, color: np.ndarray, scan: np.ndarray,
               seed: int) -> TrainState:
    torch.manual_seed(seed)
    nets = [place_module(m, rt) for m in build_cyclegan(cfg)]
    broadcast_parameters(nets, rt)
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
            "color": BatchSampler(color, cfg.batch_size, seed + 1, rt.rank, rt.world_size),
            "scan": BatchSampler(scan, cfg.batch_size, seed + 2, rt.rank, rt.world_size),
            "pool_scan": ImagePool(cfg.pool_size, seed + 3),
            "pool_color": ImagePool(cfg.pool_size, seed + 4),
            # per-rank augmentation stream: each rank transforms its own slice
            "augment": RandomAffine(cfg.flip, cfg.rotate_deg, cfg.shift, seed + 5 + 1000 * rt.rank),
        },
    )


# --------------------------------------------------------------------------- one step


def cyclegan_step(state: TrainState, cfg: CycleGANConfig, rt: Runtime) -> dict[str, float]:
    """One generator update and one discriminator update; returns the losses."""
    g_scan, g_color = state.models["G_scan"], state.models["G_color"]
    d_scan, d_color = state.models["D_scan"], state.models["D_color"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    aug: RandomAffine = state.stateful["augment"]
    fmt = rt.memory_format
    color = aug(to_model_input(state.stateful["color"].next(), rt.device, fmt))  # a: (B, 3, H, W)
    scan = aug(to_model_input(state.stateful["scan"].next(), rt.device, fmt))  # b: (B, 1, H, W)
    lam = cfg.lambda_cycle

    # --- generators: D is frozen so G's backward doesn't compute D's gradients
    for d in (d_scan, d_color):
        d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with rt.autocast():
        b = color.shape[0]
        fake_color = g_color(scan)  # G_B(b)
        # G_scan's three inputs in one batched call (every layer works per image, so this is
        # the same function as three calls, with a third of the launches): a, G_B(b), b as RGB
        g_in = [color, fake_color] + ([scan.expand(-1, 3, -1, -1)] if cfg.lambda_identity > 0 else [])
        g_out = g_scan(torch.cat(g_in).contiguous(memory_format=fmt))
        fake_scan, rec_scan = g_out[:b], g_out[b:2 * b]  # G_A(a), G_A(G_B(b))
        loss_adv = lsgan_loss(d_scan(fake_scan), True) + lsgan_loss(d_color(fake_color), True)
        noisy_scan = fake_scan + cfg.cycle_noise * torch.randn_like(fake_scan) if cfg.cycle_noise else fake_scan
        loss_cycle = (F.l1_loss(g_color(noisy_scan).float(), color.float())  # |G_B(G_A(a) + n) - a|
                      + F.l1_loss(rec_scan.float(), scan.float()))  # |G_A(G_B(b)) - b|
        loss_idt = F.l1_loss(g_out[2 * b:].float(), scan.float()) \
            if cfg.lambda_identity > 0 else torch.zeros((), device=rt.device)
        loss_g = loss_adv + lam * loss_cycle + lam * cfg.lambda_identity * loss_idt
    loss_g.backward()
    allreduce_gradients(list(g_scan.parameters()) + list(g_color.parameters()), rt)
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
    allreduce_gradients(list(d_scan.parameters()) + list(d_color.parameters()), rt)
    opt_d.step()
    return {"loss/G_adv": loss_adv.item(), "loss/cycle": loss_cycle.item(), "loss/identity": loss_idt.item(),
            "loss/D_scan": loss_d_scan.item(), "loss/D_color": loss_d_color.item()}


# --------------------------------------------------------------------------- inference


def generate_scans(model: nn.Module, color: np.ndarray, rt: Runtime, batch: int = 64,
                   progress: bool = False) -> np.ndarray:
    """uint8 (N, H, W, 3) colored images -> uint8 (N, H, W, 1) scans."""
    return run_batched(model, color, 1, rt, batch, progress, desc="scans")


def sample_grid(g_scan: nn.Module, color: np.ndarray, truth: np.ndarray | None, rt: Runtime):
    """A PIL grid: colored | generated scan | true scan | greyscale(color), one column each."""
    import torchvision
    from PIL import Image

    scans = generate_scans(g_scan, color, rt)
    c = torch.from_numpy(color).permute(0, 3, 1, 2)
    rows = [c, torch.from_numpy(scans).permute(0, 3, 1, 2).expand(-1, 3, -1, -1)]
    if truth is not None:
        rows.append(torch.from_numpy(truth).permute(0, 3, 1, 2).expand(-1, 3, -1, -1))
    rows.append(luma(c.float()).round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1))
    grid = torchvision.utils.make_grid(torch.cat(rows), nrow=len(color), padding=2, pad_value=128)
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return img.resize((img.width * 2, img.height * 2), Image.NEAREST)


def scan_quality(pred: np.ndarray, color: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """L1 / PSNR / SSIM of generated scans `pred` = scangen(color) and of greyscale(color)
    against the true scans (all uint8 NHWC; the caller generates `pred` once)."""
    from pipeline.quality import compare

    pred_t = torch.from_numpy(np.asarray(pred)).permute(0, 3, 1, 2).float() / 255
    gt = torch.from_numpy(np.asarray(truth)).permute(0, 3, 1, 2).float() / 255
    grey = luma(torch.from_numpy(np.asarray(color)).permute(0, 3, 1, 2).float()).round() / 255
    out = {}
    for name, x in (("scangen", pred_t), ("greyscale", grey)):
        for metric, values in compare(x, gt).items():
            out[f"{name}_{metric}"] = round(float(values.clamp(max=100).mean()), 4)
    out["images"] = len(color)
    return out


# --------------------------------------------------------------------------- publishing


def publish_scan_generator(g_scan: nn.Module, path: str | Path, image_size: int, steps: int) -> None:
    """models/scan_generator.pt: weights + architecture, loadable with weights_only=True."""
    from pipeline.modelio import publish_model

    publish_model(g_scan, path, MODEL_FORMAT, MODEL_VERSION, image_size=image_size, trained_steps=steps,
                  input="RGB in [-1, 1]", output="1-channel scan in [-1, 1]")


def load_scan_generator(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the published scan generator from its own config (no params.yaml needed)."""
    from pipeline.cyclegan import build_generator
    from pipeline.modelio import load_model

    return load_model(path, MODEL_FORMAT, MODEL_VERSION, build_generator, "scan generator",
                      "run `dvc repro train_cyclegan` or `dvc pull models/scan_generator.pt`", device)


def describe(cfg: CycleGANConfig, lr: float) -> dict:
    return {"cyclegan": asdict(cfg), "lr": lr}
