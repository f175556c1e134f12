"""Small helpers shared by test modules (imported as `from helpers import ...`)."""

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
