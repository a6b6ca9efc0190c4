"""Training augmentation on whole batches of tensors, cheap next to the network on a CPU.

Input and output: (B, 1, 48, 48) float in [0, 1], the network input of `to_model_input`.
Every random draw comes from the generator passed in, so an epoch is reproducible from its seed
(which is what makes `--resume` exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def random_crop(x: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    """A random side x side window of each image (the views ten-crop reads at test time)."""
    b, c, h, w = x.shape
    y0 = torch.randint(0, h - side + 1, (b,), generator=g)
    x0 = torch.randint(0, w - side + 1, (b,), generator=g)
    steps = torch.arange(side)
    rows = (y0[:, None] + steps)[:, None, :, None].expand(b, c, side, w)
    x = torch.gather(x, 2, rows)
    cols = (x0[:, None] + steps)[:, None, None, :].expand(b, c, side, side)
    return torch.gather(x, 3, cols)


def augment_batch(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Random affine (rotate, scale, shift, flip), brightness/contrast and erasing, per sample."""
    b, _, h, w = x.shape
    angle = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g) * (math.pi / 180)
    scale = _uniform(b, *cfg.scale, g)
    flip = torch.where(torch.rand(b, generator=g) < cfg.flip, -1.0, 1.0)
    tx = _uniform(b, -cfg.translate, cfg.translate, g) * 2  # grid units span [-1, 1]
    ty = _uniform(b, -cfg.translate, cfg.translate, g) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, g).view(b, 1, 1, 1)
    bright = _uniform(b, -cfg.brightness, cfg.brightness, g).view(b, 1, 1, 1)
    x = ((x - mean) * contrast + mean + bright).clamp(0, 1)

    if cfg.erase_p > 0:
        area = _uniform(b, *cfg.erase_area, g) * h * w
        aspect = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), g))
        eh = torch.sqrt(area * aspect).clamp(1, h).floor()
        ew = torch.sqrt(area / aspect).clamp(1, w).floor()
        y0 = (torch.rand(b, generator=g) * (h - eh + 1)).floor()
        x0 = (torch.rand(b, generator=g) * (w - ew + 1)).floor()
        on = (torch.rand(b, generator=g) < cfg.erase_p).view(b, 1, 1, 1)
        ys = torch.arange(h).view(1, 1, h, 1)
        xs = torch.arange(w).view(1, 1, 1, w)
        box = (
            (ys >= y0.view(b, 1, 1, 1))
            & (ys < (y0 + eh).view(b, 1, 1, 1))
            & (xs >= x0.view(b, 1, 1, 1))
            & (xs < (x0 + ew).view(b, 1, 1, 1))
            & on
        )
        noise = torch.rand(x.shape, generator=g)
        x = torch.where(box, noise, x)
    return x
