"""Learned 3D keypoint detector (paper sec. 2.1, Eq. 1).

The frame is downsampled (anti-aliased), encoded by 2D convolutions, reshaped into a 3D feature volume, decoded by a
3D hourglass into one heatmap per keypoint over a (D, h, w) grid, normalised by a softmax with a temperature, and
reduced to a keypoint by soft-argmax (the expectation of the grid coordinates under the heatmap).
"""
import torch.nn.functional as F
from torch import nn

from modules.util import AntiAliasInterpolation2d, Hourglass3d, SameBlock, check_divisible, make_coordinate_grid


class KPDetector(nn.Module):
    """Frame -> ``num_kp`` 3D keypoints.

    Args:
        num_kp: number of keypoints K (15 in the paper).
        image_channel: input channels (3).
        temperature: softmax temperature of the heatmaps (0.1).
        block_expansion, max_features, num_blocks: width, cap and depth of the 3D hourglass.
        scale_factor: input downsampling factor (0.25 at 384x384 gives a 96x96 heatmap grid).
        reshape_depth: depth D of the 3D volume (16).
        reshape_channel: channels per depth slice after the 2D->3D reshape.
    Input: frame (B, 3, H, W) in [0, 1]; H * scale_factor and W * scale_factor divisible by 2**num_blocks.
    Output: keypoints (B, K, 3) in [-1, 1] as (x, y, z), same dtype and device as the frame (a convex combination
    of grid points, so the range holds by construction).
    Raises:
        ValueError: frame size incompatible with ``scale_factor`` / ``num_blocks``.
    """

    def __init__(self, num_kp, image_channel, temperature, block_expansion, max_features, num_blocks,
                 scale_factor, reshape_depth, reshape_channel):
        super().__init__()
        self.num_kp = num_kp
        self.temperature = temperature
        self.num_blocks = num_blocks
        self.scale_factor = scale_factor
        self.reshape_depth = reshape_depth
        self.reshape_channel = reshape_channel
        self.down = AntiAliasInterpolation2d(image_channel, scale_factor)
        self.encoder = SameBlock(image_channel, reshape_channel * reshape_depth, kernel_size=7)
        self.hourglass = Hourglass3d(block_expansion, reshape_channel, num_blocks, max_features)
        self.kp_head = nn.Conv3d(self.hourglass.out_features, num_kp, kernel_size=3, padding=1)

    def heatmaps(self, frame):
        """Normalised heatmaps (B, K, D, h, w), each summing to 1 (softmax over D*h*w with the temperature)."""
        x = self.down(frame)
        b, _, h, w = x.shape
        check_divisible(h, 2 ** self.num_blocks, 'KPDetector heatmap height')
        check_divisible(w, 2 ** self.num_blocks, 'KPDetector heatmap width')
        volume = self.encoder(x).view(b, self.reshape_channel, self.reshape_depth, h, w)
        logits = self.kp_head(self.hourglass(volume))
        shape = logits.shape
        return F.softmax(logits.flatten(2) / self.temperature, dim=2).view(shape)

    def forward(self, frame):
        """Keypoints (B, K, 3) in [-1, 1] of frames (B, 3, H, W) in [0, 1] (soft-argmax of :meth:`heatmaps`)."""
        heatmap = self.heatmaps(frame)
        grid = make_coordinate_grid(heatmap.shape[2:], heatmap.dtype, heatmap.device)  # (D, h, w, 3)
        return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3, 4))
