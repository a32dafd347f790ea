"""Shared building blocks for every Sparse2Dense network.

2D/3D down, up, same and residual blocks, the 3D hourglass, anti-aliased downsampling, coordinate grids and
``kp2gaussian``. Each block is written once here and reused by the keypoint detector, the dense motion network,
the generator, the vertex head and the discriminator.

Conventions: images are (B, C, H, W); feature volumes are (B, C, D, H, W); normalised coordinates are in [-1, 1]
with x to the right, y down and z (depth) along D, stacked in the last dimension in the order (x, y, z), which is
the order ``torch.nn.functional.grid_sample`` expects. Grids use ``linspace(-1, 1, n)`` so they match
``grid_sample(..., align_corners=True)``: coordinate -1 is the centre of the first pixel, +1 of the last.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


#: ``align_corners`` used by every ``grid_sample`` / ``interpolate`` on normalised grids in this project.
ALIGN_CORNERS = True


def make_coordinate_grid(spatial_size, dtype=torch.float32, device=None):
    """Regular grid of normalised coordinates.

    Args:
        spatial_size: (H, W) or (D, H, W).
    Returns:
        (H, W, 2) with last dim (x, y), or (D, H, W, 3) with last dim (x, y, z); values in [-1, 1].
    Raises:
        ValueError: if ``spatial_size`` has neither 2 nor 3 entries.
    """
    if len(spatial_size) not in (2, 3):
        raise ValueError(f"spatial_size must be (H, W) or (D, H, W), got {tuple(spatial_size)}")
    axes = [torch.linspace(-1, 1, n, dtype=dtype, device=device) if n > 1
            else torch.zeros(1, dtype=dtype, device=device) for n in spatial_size]
    mesh = torch.meshgrid(*axes, indexing='ij')  # (z,) y, x
    return torch.stack(mesh[::-1], dim=-1)


def to_pixels(points, height, width):
    """Normalised coordinates (..., 2) in [-1, 1] (x right, y down; the convention of :func:`make_coordinate_grid`:
    x = 2 * px / (W - 1) - 1) -> pixel coordinates (..., 2) as float64 numpy (0 = centre of the first pixel)."""
    return (np.asarray(points, dtype=np.float64) + 1) / 2 * np.array([width - 1, height - 1], dtype=np.float64)


def kp2gaussian(kp_value, spatial_size, kp_variance):
    """Gaussian heatmaps centred on keypoints (FOMM / FV2V; paper Eq. 3).

    Args:
        kp_value: (B, K, 3) keypoints in [-1, 1] (x, y, z), or (B, K, 2) (x, y) for 2D heatmaps.
        spatial_size: (D, H, W) of the output volume, or (H, W) with 2D keypoints.
        kp_variance: variance of the Gaussian in normalised units (e.g. 0.01).
    Returns:
        (B, K, D, H, W) (or (B, K, H, W)) heatmaps with values in (0, 1], peak 1 at the keypoint.
    """
    grid = make_coordinate_grid(spatial_size, kp_value.dtype, kp_value.device)  # (D, H, W, 3) or (H, W, 2)
    diff = grid[None, None] - kp_value.view(*kp_value.shape[:2], *[1] * len(spatial_size), kp_value.shape[-1])
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / kp_variance)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur followed by nearest subsampling, so downsampling does not alias (FOMM).

    Input (B, C, H, W) -> output (B, C, round(H * scale), round(W * scale)); scale 1 is the identity.
    """

    def __init__(self, channels, scale):
        super().__init__()
        self.scale = float(scale)
        if self.scale == 1:
            return
        sigma = (1 / self.scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-ax ** 2 / (2 * sigma ** 2))
        kernel = torch.outer(g, g)
        kernel = kernel / kernel.sum()
        self.register_buffer('weight', kernel.expand(channels, 1, size, size).contiguous())
        self.pad = size // 2
        self.channels = channels

    def forward(self, x):
        if self.scale == 1:
            return x
        out = F.conv2d(F.pad(x, [self.pad] * 4, mode='replicate'), self.weight, groups=self.channels)
        step = int(round(1 / self.scale))
        if abs(1 / self.scale - step) < 1e-6:
            return out[:, :, ::step, ::step]
        return F.interpolate(out, scale_factor=self.scale, mode='nearest')


def _conv(dim):
    return nn.Conv2d if dim == 2 else nn.Conv3d


def _norm(dim):
    return nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d


class SameBlock(nn.Module):
    """Conv + BatchNorm + ReLU keeping the spatial size. ``dim`` 2: (B, C, H, W); 3: (B, C, D, H, W)."""

    def __init__(self, in_features, out_features, kernel_size=3, dim=2):
        super().__init__()
        self.conv = _conv(dim)(in_features, out_features, kernel_size, padding=kernel_size // 2)
        self.norm = _norm(dim)(out_features, affine=True)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class DownBlock(nn.Module):
    """SameBlock then 2x average pooling of H and W (depth kept for 3D). (B, Cin, [D,] H, W) -> (B, Cout, [D,] H/2, W/2)."""

    def __init__(self, in_features, out_features, kernel_size=3, dim=2):
        super().__init__()
        self.block = SameBlock(in_features, out_features, kernel_size, dim)
        self.pool = nn.AvgPool2d(2) if dim == 2 else nn.AvgPool3d((1, 2, 2))

    def forward(self, x):
        return self.pool(self.block(x))


class UpBlock(nn.Module):
    """2x nearest upsampling of H and W (depth kept for 3D), then SameBlock. (B, Cin, [D,] H, W) -> (B, Cout, [D,] 2H, 2W)."""

    def __init__(self, in_features, out_features, kernel_size=3, dim=2):
        super().__init__()
        self.scale = (2, 2) if dim == 2 else (1, 2, 2)
        self.block = SameBlock(in_features, out_features, kernel_size, dim)

    def forward(self, x):
        return self.block(F.interpolate(x, scale_factor=self.scale, mode='nearest'))


class ResBlock(nn.Module):
    """Pre-activation residual block (BN-ReLU-conv twice + identity). Shape preserved, 2D or 3D."""

    def __init__(self, features, kernel_size=3, dim=2):
        super().__init__()
        conv, norm = _conv(dim), _norm(dim)
        self.norm1 = norm(features, affine=True)
        self.conv1 = conv(features, features, kernel_size, padding=kernel_size // 2)
        self.norm2 = norm(features, affine=True)
        self.conv2 = conv(features, features, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


class Hourglass3d(nn.Module):
    """U-Net over a 3D volume: ``num_blocks`` down blocks (H, W halved, depth kept) and up blocks with skips.

    Input (B, in_features, D, H, W) with H, W divisible by 2**num_blocks; output (B, out_features, D, H, W) with
    ``out_features = block_expansion + in_features``.
    """

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        chans = [in_features] + [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down = nn.ModuleList(DownBlock(chans[i], chans[i + 1], dim=3) for i in range(num_blocks))
        ups = []
        for i in reversed(range(num_blocks)):
            in_ch = chans[i + 1] if i == num_blocks - 1 else 2 * chans[i + 1]
            out_ch = block_expansion if i == 0 else chans[i]
            ups.append(UpBlock(in_ch, out_ch, dim=3))
        self.up = nn.ModuleList(ups)
        self.out_features = block_expansion + in_features

    def forward(self, x):
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


def check_divisible(size, factor, what):
    """Raise ``ValueError`` unless ``size`` is divisible by ``factor`` (used to validate frame shapes early)."""
    if size % factor:
        raise ValueError(f"{what}: size {size} must be divisible by {factor}; choose a frame_shape that is "
                         f"a multiple of {factor}")


def num_parameters(module):
    """Number of trainable parameters of ``module`` (int)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
