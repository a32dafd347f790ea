"""Vertex head: dense body vertices from the refined motion features (paper sec. 2.3, Eq. 7).

Residual blocks on ``F_refine``, a 1x1 projection, adaptive average pooling to a small fixed grid and one linear
layer regress N 2D vertices (10475 SMPL-X vertices with OSX labels in the paper; 543 MediaPipe Holistic landmarks
with the offline teacher of ``tools/extract_vertices.py``).
"""
from torch import nn

from modules.util import ResBlock


class VertexHead(nn.Module):
    """``F_refine`` -> (B, N, 2) vertices.

    Args:
        in_channels: channels of ``F_refine`` (``OcclusionAwareGenerator.refine_channels``).
        num_vertices: N.
        num_resblocks: 2D residual blocks on ``F_refine``.
        channels: channels after the 1x1 projection.
        pool_size: side of the adaptive average pooling grid (the linear layer sees channels * pool_size**2).
    Input: F_refine (B, in_channels, h, w), any h, w.
    Output: (B, N, 2) vertices in normalised image coordinates (x right, y down; [-1, 1] inside the frame, not
    clamped, so a vertex just outside the frame can be represented).
    """

    def __init__(self, in_channels, num_vertices, num_resblocks, channels, pool_size):
        super().__init__()
        self.num_vertices = num_vertices
        self.resblocks = nn.Sequential(*[ResBlock(in_channels) for _ in range(num_resblocks)])
        self.project = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                                     nn.Conv2d(in_channels, channels, kernel_size=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.fc = nn.Linear(channels * pool_size ** 2, num_vertices * 2)

    def forward(self, f_refine):
        x = self.pool(self.project(self.resblocks(f_refine)))
        return self.fc(x.flatten(1)).view(-1, self.num_vertices, 2)
