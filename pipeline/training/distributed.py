"""Several processes training one network (torchrun): every rank starts from rank 0's
weights, and gradients are averaged over ranks after each backward pass, which gives DDP's
semantics without the DDP wrapper. A no-op in a single process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from pipeline.runtime import Runtime


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
