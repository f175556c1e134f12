"""How a trained network runs: on its device in its memory format, in PyTorch's
DistributedDataParallel across processes (torchrun), and compiled (`for_training`).

`data_parallel` wraps each trained network in DDP when the runtime has more than one rank:
every rank starts from rank 0's weights (DDP broadcasts them when it wraps), and gradients
are averaged in buckets *during* the backward pass, each bucket's all-reduce overlapping
the gradients still being computed. In one process the network is returned as it is.

How the GAN steps use it (`colorizer_step`, `cyclegan_step`):
- A discriminator judges the generator's output in the generator's update with its
  parameters frozen; that forward goes through the bare network (`runtime.unwrap`), since
  DDP has nothing to average there. Its own update goes through the wrapper.
- A generator's graph is backpropagated once per step, so no gradient is ever averaged
  twice and no `no_sync` is needed: the discriminator's loss sees `fake.detach()`.
- Spectral norm's power-iteration vectors are buffers computed from the (identical)
  weights, so buffers are synced once, when DDP wraps, not before every forward
  (`forward_sync_buffers=False`).

Each rank draws its own slice of every global batch of `batch_size * world_size` samples
(`pipeline.training.samplers`: a DistributedSampler's split, by rank and world size), so
the step equals one process's with the global batch.
"""

from __future__ import annotations

from torch import nn

from pipeline.runtime import Runtime, place_module


def data_parallel(module: nn.Module, rt: Runtime) -> nn.Module:
    """`module` (already on its device) in DDP across the runtime's ranks, or in any process
    group already joined (one process too: how the tests check the DDP path); unchanged in a
    single process outside a group."""
    import torch.distributed as dist

    if not (rt.distributed or (dist.is_available() and dist.is_initialized())):
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def for_training(module: nn.Module, rt: Runtime, compile_mode: str = "none") -> nn.Module:
    """`module` placed on the runtime's device and memory format, in DDP across ranks, and
    through `torch.compile` unless `compile_mode` is "none". Compiled around DDP, as PyTorch
    recommends: the compiled graph is split at DDP's bucket boundaries, so each bucket's
    all-reduce still overlaps the rest of the backward. The optimisers hold the same
    parameters either way; `runtime.unwrap` gives the bare network back."""
    module = data_parallel(place_module(module, rt), rt)
    if compile_mode == "none":
        return module
    import torch

    return torch.compile(module, mode=compile_mode)
