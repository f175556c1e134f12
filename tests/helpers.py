"""Small helpers shared by test modules (imported as `from helpers import ...`)."""

import numpy as np
import torch
import torch.nn.functional as F


def fit_one_batch(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, lr: float,
                  steps: int = 150) -> list[float]:
    """Adam on one fixed (input, target) pair with L1; the loss after every step."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.l1_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def smooth(n, c, size=32, seed=0):
    """uint8 (n, size, size, c) images that vary slowly (4x4 noise, bilinear-upsampled)."""
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.random((n, c, 4, 4), dtype=np.float32))
    up = torch.nn.functional.interpolate(low, size=size, mode="bilinear")
    return (up.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def publish_tiny_scan_generator(path, image_size: int = 32):
    """A tiny untrained scan generator, published like `models/scan_generator.pt`."""
    from pipeline.config import CycleGANConfig
    from pipeline.models.scan_generator import publish_scan_generator
    from pipeline.training.cyclegan_step import build_cyclegan

    torch.manual_seed(0)
    g_scan = build_cyclegan(CycleGANConfig(generator_width=4, n_down=1, n_res=1, groups=2))[0]
    publish_scan_generator(g_scan, path, image_size=image_size, steps=0)
    return path


def publish_tiny_colorizer(path, hints_max: int = 8, disc_width: int = 4):
    """A tiny untrained colorizer that takes hints, published like `models/colorizer.pt`."""
    from pipeline.config import ColorizerConfig
    from pipeline.models.colorizer import publish_colorizer
    from pipeline.training.colorizer_step import build_colorizer

    torch.manual_seed(0)
    cfg = ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=disc_width, hints_max=hints_max)
    publish_colorizer(build_colorizer(cfg)[0], path, image_size=32, steps=0, variant="scangen")
    return path


def kill_at_checkpoint(proc, ckpt, step: int = 10, timeout: float = 300) -> None:
    """SIGKILL a training subprocess once its checkpoint `ckpt` has reached `step`
    (asserting it was still running: a finished run would test nothing)."""
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["step"] >= step:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before the kill; raise the steps in the test"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc, what: str, timeout: float = 60) -> None:
    """Poll `url` until the server started as `proc` answers (any HTTP status counts);
    kill it and fail, with its output, when it does not within `timeout` s."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # answering (a 403 without credentials is fine)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    out = proc.stdout or proc.stderr
    raise AssertionError(f"{what} did not start: {out.read()[-2000:] if out else ''}")


def rerun_resumes(cmd: list[str], cwd, env: dict, live) -> None:
    """Re-run a killed training stage as DVC does (its DVCLive folder deleted first) and
    check that it resumed from its checkpoint."""
    import shutil
    import subprocess

    shutil.rmtree(live)
    out = subprocess.run(cmd, cwd=cwd, env=env, check=True, timeout=600, capture_output=True, text=True)
    assert "resuming from" in out.stdout + out.stderr


def same_weights(a, b) -> bool:
    """Do two published model files hold identical weights?"""
    x = torch.load(a, weights_only=True)["state_dict"]
    y = torch.load(b, weights_only=True)["state_dict"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
