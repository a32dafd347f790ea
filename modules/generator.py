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
from modules.util import ALIGN_CORNERS, DownBlock, ResBlock, SameBlock, UpBlock, check_divisible, kp2gaussian


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
        warped_skips: also warp the 2D encoder features of every finer resolution with the depth-averaged
            deformation, mask them with the occlusion map and concatenate them into the decoder (multi-scale
            warped skips, as TPSMM). False is the paper's FV2V-style generator (all texture passes the volume);
            the CPU config turns it on because the volume alone learns texture too slowly for a CPU budget.
        blend_warped_source: the decoder also predicts a mask that blends the key-reference frame warped by the
            depth-averaged deformation (sharp wherever the motion is right, e.g. a static background) with its
            rendered RGB (vid2vid-style warp + hallucination). False is the paper's Eq. 6 (rendered RGB only).
        keypoint_heatmaps: the decoder also sees where the keypoints are: 2D Gaussian heatmaps of ``kp_driving`` and
            ``kp_source`` (x, y; variance ``dense_motion_params['kp_variance']``) at the volume resolution, through a
            zero-initialised 3x3 convolution added to ``F_refine`` (so a checkpoint without it fine-tunes from the
            same output). A warp cannot open a closed mouth (tools/probe_motion); this tells the decoder where the
            driving lips are so it can draw them. False is the paper's decoder.
    Shapes: source (B, 3, H, W) in [0, 1], H and W divisible by 2**num_down_blocks and by the dense motion
    hourglass' 2**num_blocks at the volume resolution.
    """

    def __init__(self, image_channel, feature_channel, num_kp, block_expansion, max_features, num_down_blocks,
                 reshape_depth, num_resblocks, dense_motion_params, warped_skips,
                 blend_warped_source, keypoint_heatmaps=False):
        super().__init__()
        self.feature_channel = feature_channel
        self.reshape_depth = reshape_depth
        self.num_down_blocks = num_down_blocks
        self.warped_skips = warped_skips
        self.blend_warped_source = blend_warped_source
        chans = [block_expansion] + [min(max_features, block_expansion * 2 ** (i + 1))
                                     for i in range(num_down_blocks)]
        self.first = SameBlock(image_channel, block_expansion, kernel_size=7)
        self.down = nn.ModuleList(DownBlock(chans[i], chans[i + 1]) for i in range(num_down_blocks))
        self.to_volume = nn.Conv2d(chans[-1], feature_channel * reshape_depth, kernel_size=1)
        self.resblocks_3d = nn.Sequential(*[ResBlock(feature_channel, dim=3) for _ in range(num_resblocks)])
        self.dense_motion = DenseMotionNetwork(num_kp=num_kp, feature_channel=feature_channel,
                                               reshape_depth=reshape_depth, **dense_motion_params)
        self.from_volume = SameBlock(feature_channel * reshape_depth, chans[-1], kernel_size=3)
        self.refine = nn.Conv2d(chans[-1], chans[-1], kernel_size=1)
        self.resblocks_2d = nn.Sequential(*[ResBlock(chans[-1]) for _ in range(num_resblocks)])
        self.kp_variance = dense_motion_params['kp_variance']
        self.keypoint_heatmaps = None
        if keypoint_heatmaps:
            self.keypoint_heatmaps = nn.Conv2d(2 * num_kp, chans[-1], kernel_size=3, padding=1)
            nn.init.zeros_(self.keypoint_heatmaps.weight)
            nn.init.zeros_(self.keypoint_heatmaps.bias)
        skip = 2 if warped_skips else 1  # decoder inputs grow by the concatenated warped skip
        self.up = nn.ModuleList(UpBlock(chans[i + 1] * (skip if i + 1 < num_down_blocks else 1), chans[i])
                                for i in reversed(range(num_down_blocks)))
        self.final = nn.Conv2d(block_expansion * skip, image_channel + int(blend_warped_source), kernel_size=7,
                               padding=3)
        #: channels of ``F_refine`` (input of the vertex head)
        self.refine_channels = chans[-1]

    def encode_source(self, source):
        """Texture features of the key-reference frame (compute once per key frame).

        Args:
            source: (B, 3, H, W) in [0, 1].
        Returns:
            dict with 'volume' (B, C, D, H / 2**n, W / 2**n); with ``warped_skips``, 'skips': the 2D encoder
            features [(B, c_0, H, W), (B, c_1, H / 2, W / 2), ...] of the finer resolutions; with
            ``blend_warped_source``, 'image': the source itself.
        Raises:
            ValueError: H or W not divisible by 2**num_down_blocks.
        """
        b, _, h, w = source.shape
        factor = 2 ** self.num_down_blocks
        check_divisible(h, factor, 'generator input height')
        check_divisible(w, factor, 'generator input width')
        skips = [self.first(source)]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = self.to_volume(skips.pop())
        volume = out.view(b, self.feature_channel, self.reshape_depth, h // factor, w // factor)
        features = {'volume': self.resblocks_3d(volume)}
        if self.warped_skips:
            features['skips'] = skips
        if self.blend_warped_source:
            features['image'] = source
        return features

    def render(self, source_features, kp_source, kp_driving):
        """Warp the source features towards the driving keypoints and decode (Eqs. 2-6).

        Args:
            source_features: from :meth:`encode_source`, batch B or 1 (a single key frame is broadcast to the
                batch of ``kp_driving``).
            kp_source, kp_driving: keypoint tensors (B, K, 3) in [-1, 1] (``kp_source`` may have batch 1).
        Returns:
            dict with 'prediction' (B, 3, H, W) in [0, 1]; 'F_refine' (B, C2, h, w); 'deformation'
            (B, D, h, w, 3); 'occlusion_map' (B, 1, h, w) in [0, 1]; 'mask' (B, K + 1, D, h', w');
            'sparse_motion' and 'sparse_deformed' (the K + 1 warped compressed volumes); with
            ``blend_warped_source``, 'deformed' (B, 3, H, W), the warped source, and 'blend_mask' (B, 1, H, W) in
            [0, 1], its weight in the prediction.
        """
        n = kp_driving.shape[0]
        volume = source_features['volume']
        volume = volume.expand(n, *volume.shape[1:])
        kp_source = kp_source.expand(n, -1, -1)
        motion = self.dense_motion(volume, kp_source, kp_driving)
        warped = F.grid_sample(volume, motion['deformation'], align_corners=ALIGN_CORNERS)
        flat = self.from_volume(warped.flatten(1, 2))
        f_refine = self.refine(flat) * motion['occlusion_map']  # Eq. 5
        out = f_refine
        if self.keypoint_heatmaps is not None:
            heatmaps = kp2gaussian(torch.cat([kp_driving, kp_source], dim=1)[..., :2], f_refine.shape[2:],
                                   self.kp_variance)
            out = out + self.keypoint_heatmaps(heatmaps)
        out = self.resblocks_2d(out)
        skips = [s.expand(n, *s.shape[1:]) for s in source_features.get('skips', [])]
        for block in self.up:
            out = block(out)
            if skips:
                skip = skips.pop()
                flow = self.flow_2d(motion['deformation'], skip.shape[2:])
                occlusion = F.interpolate(motion['occlusion_map'], size=skip.shape[2:], mode='bilinear',
                                          align_corners=ALIGN_CORNERS)
                warped_skip = F.grid_sample(skip, flow, align_corners=ALIGN_CORNERS) * occlusion
                out = torch.cat([out, warped_skip], dim=1)
        out = self.final(out)
        result = dict(motion, F_refine=f_refine)
        if self.blend_warped_source:
            image = source_features['image'].expand(n, -1, -1, -1)
            deformed = F.grid_sample(image, self.flow_2d(motion['deformation'], image.shape[2:]),
                                     align_corners=ALIGN_CORNERS)
            mask = torch.sigmoid(out[:, -1:])
            result.update(deformed=deformed, blend_mask=mask,
                          prediction=mask * deformed + (1 - mask) * torch.sigmoid(out[:, :-1]))
        else:
            result['prediction'] = torch.sigmoid(out)  # Eq. 6
        return result

    @staticmethod
    def flow_2d(deformation, size):
        """Depth-averaged (x, y) of a 3D ``deformation`` (B, D, h, w, 3), resized to ``size`` = (H, W):
        a 2D sampling grid (B, H, W, 2) in normalised coordinates."""
        flow = deformation[..., :2].mean(dim=1).permute(0, 3, 1, 2)
        flow = F.interpolate(flow, size=tuple(size), mode='bilinear', align_corners=ALIGN_CORNERS)
        return flow.permute(0, 2, 3, 1)

    def forward(self, source, kp_source, kp_driving):
        """``render(encode_source(source), ...)`` plus 'deformed': the source image warped by the depth-averaged
        deformation (B, 3, H, W), for visualisation only."""
        out = self.render(self.encode_source(source), kp_source, kp_driving)
        if 'deformed' not in out:
            flow = self.flow_2d(out['deformation'], source.shape[2:])
            out['deformed'] = F.grid_sample(source, flow, align_corners=ALIGN_CORNERS)
        return out
