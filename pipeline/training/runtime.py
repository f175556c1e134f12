"""Device and process-group runtime shared by both GAN stages: CUDA with bf16 autocast when
present, CPU fp32 otherwise; torchrun ranks (gloo on CPU, nccl on CUDA) and the gradient
averaging that gives DDP semantics without the DDP wrapper.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None  # bf16 on CUDA; None: full fp32
    channels_last: bool = True  # NHWC activations: the fast conv layout for oneDNN and cuDNN

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def setup_runtime(device: str = "auto", amp: bool = True, autotune: bool = True) -> Runtime:
    """Pick the device and join the torchrun process group when there is one.

    `autotune`: let cuDNN time its kernels per input shape (training: one shape, pays off;
    inference on users' images of every size: each new shape would pay the search again).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {device!r}: allowed values are auto, cpu, cuda")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use auto or cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = autotune
    else:
        dev = torch.device("cpu")
    amp_dtype = torch.bfloat16 if (use_cuda and amp and torch.cuda.is_bf16_supported()) else None
    return Runtime(device=dev, rank=rank, world_size=world, local_rank=local_rank, amp_dtype=amp_dtype)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def place_module(module: nn.Module, rt: Runtime) -> nn.Module:
    """Move to the device in the runtime's memory format."""
    return module.to(rt.device).to(memory_format=rt.memory_format)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
