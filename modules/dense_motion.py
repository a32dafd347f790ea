"""Sparse-to-dense motion estimation (paper sec. 2.2, Eqs. 2-4).

K + 1 sparse motions (identity for the background plus one translation per keypoint pair) each warp the compressed
feature volume of the key-reference frame; together with Gaussian heatmap differences they feed a 3D hourglass
that predicts a softmax mask over the motions. The mask-weighted sum of sparse motions is the dense
``deformation``; a 2D head predicts the ``occlusion_map``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from modules.util import ALIGN_CORNERS, Hourglass3d, kp2gaussian, make_coordinate_grid


def sparse_motions(kp_source, kp_driving, spatial_size):
    """Backward sparse motions, one per keypoint plus the identity (paper Eq. 2).

    For a point ``p`` of the driving frame, motion k maps it to ``p - kp_driving[k] + kp_source[k]`` in the source
    (a translation: these 3D keypoints carry no Jacobians).

    Args:
        kp_source, kp_driving: keypoint tensors (B, K, 3) in [-1, 1].
        spatial_size: (D, H, W) of the volume.
    Returns:
        (B, K + 1, D, H, W, 3) sampling grids in normalised (x, y, z); index 0 is the identity grid.
    """
    grid = make_coordinate_grid(spatial_size, kp_source.dtype, kp_source.device)  # (D, H, W, 3)
    b, k = kp_source.shape[:2]
    shift = (kp_source - kp_driving).view(b, k, 1, 1, 1, 3)
    per_kp = grid[None, None] + shift
    identity = grid[None, None].expand(b, 1, *grid.shape)
    return torch.cat([identity, per_kp], dim=1)


def heatmap_difference(kp_source, kp_driving, spatial_size, kp_variance):
    """Gaussian heatmap differences, driving minus source, with a zero background channel (paper Eq. 3).

    Args:
        kp_source, kp_driving: keypoint tensors (B, K, 3) in [-1, 1].
        spatial_size: (D, H, W) of the volume.
        kp_variance: variance of the Gaussians in normalised units.
    Returns:
        (B, K + 1, 1, D, H, W) with values in [-1, 1].
    """
    heatmap = (kp2gaussian(kp_driving, spatial_size, kp_variance)
               - kp2gaussian(kp_source, spatial_size, kp_variance))
    zeros = torch.zeros_like(heatmap[:, :1])
    return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)


class DenseMotionNetwork(nn.Module):
    """Predicts ``deformation`` and ``occlusion_map`` from the source feature volume and two keypoint sets.

    Args:
        num_kp: K.
        feature_channel: channels C of the source feature volume.
        reshape_depth: depth D of the volume.
        block_expansion, max_features, num_blocks: the 3D hourglass.
        compress: channels the feature volume is compressed to before the K + 1 warps (memory).
        kp_variance: variance of the keypoint Gaussians (normalised units, 0.01).
        kernel_size: kernel of the 3D mask and 2D occlusion heads (7 in FV2V; the mask conv dominates the cost, so
            the CPU config uses 3).
        scale_factor: the motion is estimated on the volume average-pooled by this factor in H and W (1 / integer,
            as FOMM's dense motion ``scale_factor``); deformation and occlusion are upsampled back.
    Input: feature (B, C, D, h, w); kp_source, kp_driving keypoint tensors (B, K, 3) in [-1, 1].
    Output dict:
        'sparse_motion' (B, K + 1, D, h, w, 3); 'mask' (B, K + 1, D, h, w), softmax over motions (Eq. 4);
        'deformation' (B, D, h, w, 3) sampling grid in normalised coordinates; 'occlusion_map' (B, 1, h, w) in [0, 1].
        'sparse_motion' and 'mask' are at the pooled resolution (h * scale_factor, w * scale_factor).
    """

    def __init__(self, num_kp, feature_channel, reshape_depth, block_expansion, max_features, num_blocks,
                 compress, kp_variance, kernel_size, scale_factor):
        super().__init__()
        self.pool = int(round(1 / scale_factor))
        self.kp_variance = kp_variance
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        in_features = (num_kp + 1) * (compress + 1)
        self.hourglass = Hourglass3d(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_features, num_kp + 1, kernel_size, padding=kernel_size // 2)
        self.occlusion = nn.Conv2d(self.hourglass.out_features * reshape_depth, 1, kernel_size,
                                   padding=kernel_size // 2)

    def forward(self, feature, kp_source, kp_driving):
        full_size = feature.shape[2:]
        if self.pool > 1:
            feature = F.avg_pool3d(feature, (1, self.pool, self.pool))
        b, _, d, h, w = feature.shape
        spatial_size = (d, h, w)
        compressed = F.relu(self.norm(self.compress(feature)))
        motion = sparse_motions(kp_source, kp_driving, spatial_size)  # (B, K+1, D, h, w, 3)
        n = motion.shape[1]
        repeated = compressed.unsqueeze(1).expand(b, n, *compressed.shape[1:]).reshape(b * n, -1, d, h, w)
        deformed = F.grid_sample(repeated, motion.reshape(b * n, d, h, w, 3), align_corners=ALIGN_CORNERS)
        deformed = deformed.view(b, n, -1, d, h, w)
        heatmap = heatmap_difference(kp_source, kp_driving, spatial_size, self.kp_variance)
        net_in = torch.cat([heatmap, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(net_in)
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (mask.unsqueeze(-1) * motion).sum(dim=1)
        occlusion_map = torch.sigmoid(self.occlusion(prediction.flatten(1, 2)))
        if self.pool > 1:
            deformation = F.interpolate(deformation.permute(0, 4, 1, 2, 3), size=full_size, mode='trilinear',
                                        align_corners=ALIGN_CORNERS).permute(0, 2, 3, 4, 1)
            occlusion_map = F.interpolate(occlusion_map, size=full_size[1:], mode='bilinear',
                                          align_corners=ALIGN_CORNERS)
        return {'sparse_motion': motion, 'mask': mask, 'deformation': deformation,
                'occlusion_map': occlusion_map, 'sparse_deformed': deformed}
