"""Occlusion-aware generator (paper sec. 2.2-2.3, Eqs. 5-6).

The key-reference frame is encoded once into a 3D texture feature volume. Per driving frame, the dense motion
network turns the keypoint pair into a ``deformation`` and an ``occlusion_map``; the volume is warped, flattened to
2D, multiplied by the occlusion map (``F_refine``, Eq. 5) and decoded into the ``prediction`` (Eq. 6).
``F_refine`` is also the input of the vertex head.
"""
import torch
import torch.nn.functional as F
from torch import nn

from modules.dense_motion import DenseMotionNetwork
from modules.util import ALIGN_CORNERS, DownBlock, ResBlock, SameBlock, UpBlock, check_divisible


class OcclusionAwareGenerator(nn.Module):
    """Key-reference frame + keypoints -> rendered frame.

    Args:
        image_channel: 3.
        feature_channel: channels C of the 3D texture volume (32 in the paper's setting).
        num_kp: K.
        block_expansion, max_features: widths of the 2D encoder/decoder.
        num_down_blocks: 2D down/up blocks (2: the volume is at H/4 x W/4).
        reshape_depth: depth D of the volume (16).
        num_resblocks: 3D residual blocks on the volume and 2D residual blocks before the decoder.
        dense_motion_params: kwargs of :class:`DenseMotionNetwork`.
    Shapes: source (B, 3, H, W) in [0, 1], H and W divisible by 2**num_down_blocks and by the dense motion
    hourglass' 2**num_blocks at the volume resolution.
    """

    def __init__(self, image_channel, feature_channel, num_kp, block_expansion, max_features, num_down_blocks,
                 reshape_depth, num_resblocks, dense_motion_params, **kwargs):
        super().__init__()
        self.feature_channel = feature_channel
        self.reshape_depth = reshape_depth
        self.num_down_blocks = num_down_blocks
        chans = [block_expansion] + [min(max_features, block_expansion * 2 ** (i + 1))
                                     for i in range(num_down_blocks)]
        self.first = SameBlock(image_channel, block_expansion, kernel_size=7)
        self.down = nn.Sequential(*[DownBlock(chans[i], chans[i + 1]) for i in range(num_down_blocks)])
        self.to_volume = nn.Conv2d(chans[-1], feature_channel * reshape_depth, kernel_size=1)
        self.resblocks_3d = nn.Sequential(*[ResBlock(feature_channel, dim=3) for _ in range(num_resblocks)])
        self.dense_motion = DenseMotionNetwork(num_kp=num_kp, feature_channel=feature_channel,
                                               reshape_depth=reshape_depth, **dense_motion_params)
        self.from_volume = SameBlock(feature_channel * reshape_depth, chans[-1], kernel_size=3)
        self.refine = nn.Conv2d(chans[-1], chans[-1], kernel_size=1)
        self.resblocks_2d = nn.Sequential(*[ResBlock(chans[-1]) for _ in range(num_resblocks)])
        self.up = nn.Sequential(*[UpBlock(chans[i + 1], chans[i]) for i in reversed(range(num_down_blocks))])
        self.final = nn.Conv2d(block_expansion, image_channel, kernel_size=7, padding=3)
        #: channels of ``F_refine`` (input of the vertex head)
        self.refine_channels = chans[-1]

    def encode_source(self, source):
        """Texture feature volume of the key-reference frame (compute once per key frame).

        Args:
            source: (B, 3, H, W) in [0, 1].
        Returns:
            (B, C, D, H / 2**n, W / 2**n) feature volume.
        Raises:
            ValueError: H or W not divisible by 2**num_down_blocks.
        """
        b, _, h, w = source.shape
        factor = 2 ** self.num_down_blocks
        check_divisible(h, factor, 'generator input height')
        check_divisible(w, factor, 'generator input width')
        out = self.to_volume(self.down(self.first(source)))
        volume = out.view(b, self.feature_channel, self.reshape_depth, h // factor, w // factor)
        return self.resblocks_3d(volume)

    def render(self, feature_volume, kp_source, kp_driving):
        """Warp the source feature volume towards the driving keypoints and decode (Eqs. 2-6).

        Args:
            feature_volume: (B, C, D, h, w) from :meth:`encode_source`.
            kp_source, kp_driving: ``{'value': (B, K, 3)}`` keypoints in [-1, 1].
        Returns:
            dict with 'prediction' (B, 3, H, W) in [0, 1]; 'F_refine' (B, C2, h, w); 'deformation'
            (B, D, h, w, 3); 'occlusion_map' (B, 1, h, w) in [0, 1]; 'mask' (B, K + 1, D, h, w);
            'sparse_motion' and 'sparse_deformed' (the K + 1 warped compressed volumes).
        """
        motion = self.dense_motion(feature_volume, kp_source, kp_driving)
        warped = F.grid_sample(feature_volume, motion['deformation'], align_corners=ALIGN_CORNERS)
        flat = self.from_volume(warped.flatten(1, 2))
        f_refine = self.refine(flat) * motion['occlusion_map']  # Eq. 5
        out = self.up(self.resblocks_2d(f_refine))
        prediction = torch.sigmoid(self.final(out))  # Eq. 6
        return dict(motion, prediction=prediction, F_refine=f_refine)

    def forward(self, source, kp_source, kp_driving):
        """``render(encode_source(source), ...)`` plus 'deformed': the source image warped by the depth-averaged
        deformation (B, 3, H, W), for visualisation only."""
        out = self.render(self.encode_source(source), kp_source, kp_driving)
        flow = out['deformation'][..., :2].mean(dim=1).permute(0, 3, 1, 2)
        flow = F.interpolate(flow, size=source.shape[2:], mode='bilinear', align_corners=ALIGN_CORNERS)
        out['deformed'] = F.grid_sample(source, flow.permute(0, 2, 3, 1), align_corners=ALIGN_CORNERS)
        return out
