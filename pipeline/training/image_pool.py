"""`ImagePool`: the 50-image history of generated images each CycleGAN discriminator also
sees (Shrivastava et al. 2017; CycleGAN §4), so D doesn't chase G's latest mode.
"""

from __future__ import annotations

import torch

from pipeline.pixels import memory_format_of


class ImagePool:
    """History buffer of generated images (CycleGAN's pool, size 50 by default).

    `query` returns, per image, either the new image or (p=0.5, once the pool is full) a
    stored one that it replaces. Draws come from the pool's own generator, so a
    checkpointed pool resumes exactly.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                j = int(torch.randint(0, self.size, (), generator=self.generator))
                # `.to`: a resumed pool's images come back on the CPU (the checkpoint's device)
                out.append(self.images[j].to(img.device, copy=True))
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.cat(out).contiguous(memory_format=memory_format_of(images))

    def state_dict(self) -> dict:
        return {"images": [t.cpu() for t in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Images stay where the checkpoint has them (the CPU); `query` moves each one it
        returns to its batch's device."""
        self.images = list(state["images"])
        self.generator.set_state(state["generator"])
