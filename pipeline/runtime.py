"""Where the networks run: the device (CUDA with bf16 autocast when present, CPU fp32
otherwise), the torchrun process group (gloo on CPU, nccl on CUDA), seeding, and the
inference precision of whole pages (bf16 where the hardware computes it natively).

Every layer uses it: the stages that train and measure, and the colorist's page inference.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from dataclasses import dataclass
from pathlib import Path

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


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (`.module`) and/or `torch.compile` (`._orig_mod`): its
    own attributes (`config`) and methods (`forward_with_features`). Other wrappers with a
    `.module` (a weight average, `torch.optim.swa_utils.AveragedModel`) are kept whole:
    their own state (how many steps averaged) belongs to their checkpoint."""
    module = getattr(module, "_orig_mod", module)  # compiled (around DDP, as `for_training` does)
    if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = module.module
    return getattr(module, "_orig_mod", module)


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bf16 natively (AVX512-BF16 or AMX)? Elsewhere bf16 is emulated
    and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': bf16 on CUDA and on CPUs with native bf16, fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: allowed values are {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"


def inference_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for inference (the weights stay fp32), or nothing for fp32."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
