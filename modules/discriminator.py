"""Multi-scale patch discriminator with spectral normalisation (paper sec. 2.4; FOMM / pix2pixHD style)."""
import torch.nn.functional as F
from torch import nn

from modules.util import AntiAliasInterpolation2d


class DownBlockSN(nn.Module):
    """Conv 4x4 (+ spectral norm) + optional instance norm + LeakyReLU(0.2) + optional 2x average pooling."""

    def __init__(self, in_features, out_features, norm, pool, sn):
        super().__init__()
        conv = nn.Conv2d(in_features, out_features, kernel_size=4)
        self.conv = nn.utils.spectral_norm(conv) if sn else conv
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else nn.Identity()
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(F.leaky_relu(self.norm(self.conv(x)), 0.2))


class Discriminator(nn.Module):
    """Patch discriminator at one scale.

    Args:
        num_channels: input channels (3).
        block_expansion, max_features: channels of the first block and their cap (doubling per block).
        num_blocks: 4x4 conv blocks (all but the last halve the resolution).
        sn: spectral normalisation of every convolution.
    Input (B, 3, H, W) in [0, 1]. Output: (list of ``num_blocks`` feature maps, (B, 1, h, w) patch logits).
    """

    def __init__(self, num_channels, block_expansion, num_blocks, max_features, sn):
        super().__init__()
        chans = [num_channels] + [min(max_features, block_expansion * 2 ** i) for i in range(num_blocks)]
        self.blocks = nn.ModuleList(
            DownBlockSN(chans[i], chans[i + 1], norm=i > 0, pool=i < num_blocks - 1, sn=sn) for i in range(num_blocks))
        conv = nn.Conv2d(chans[-1], 1, kernel_size=1)
        self.head = nn.utils.spectral_norm(conv) if sn else conv

    def forward(self, x):
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features, self.head(x)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per image scale.

    Args:
        scales: list of scales, e.g. [1] or [1, 0.5]; the other arguments go to :class:`Discriminator`.
    Input: image (B, 3, H, W) in [0, 1].
    Output: dict ``{scale_key: (feature_maps, logits)}`` with keys 'disc_1', 'disc_0-5', ...
    """

    def __init__(self, scales, num_channels, block_expansion, num_blocks, max_features, sn):
        super().__init__()
        self.scales = list(scales)
        self.discs = nn.ModuleDict({self.key(s): Discriminator(num_channels, block_expansion, num_blocks, max_features,
                                                               sn) for s in self.scales})
        self.downs = nn.ModuleDict({self.key(s): AntiAliasInterpolation2d(3, s) for s in self.scales})

    @staticmethod
    def key(scale):
        """Dictionary key of a scale (``'disc_1'``, ``'disc_0-5'``); dots are not allowed in module names."""
        return 'disc_' + str(scale).replace('.', '-')

    def forward(self, image):
        return {k: self.discs[k](self.downs[k](image)) for k in self.discs}
