"""Frechet Video Distance (Unterthiner et al., 2019, arXiv 1812.01717) with an I3D TorchScript checkpoint.

Protocol (fixed here, reported with every result):
    - clips of CLIP_LENGTH = 16 consecutive frames, taken every ``stride`` frames (default 16: non-overlapping)
      from each sequence; trailing frames that do not fill a clip are dropped;
    - each frame RGB in [0, 1] is resized to 224 x 224 (torch bilinear, align_corners=False, no antialias),
      then mapped to [-1, 1];
    - features: ``i3d_torchscript.pt`` (I3D Inception-v1 trained on Kinetics-400, the TF-Hub network of the
      original FVD, exported to TorchScript and distributed with StyleGAN-V's FVD code), called as
      ``model(x, rescale=False, resize=False, return_features=True)`` with x (B, 3, 16, 224, 224) -> (B, 400),
      the pre-softmax logits layer;
    - FVD: Frechet distance between Gaussians fitted to the reference clips' and the decoded clips' features,
      over the whole test set (all clips of all sequences of one codec point). With fewer clips than feature
      dimensions the covariances are rank-deficient: compare FVD values only under this same protocol.
The checkpoint cannot be downloaded here: without it FVD is reported as unavailable (evaluation/weights.py).
This module has no I3D architecture of its own; it only loads the TorchScript file.

A TorchScript file is a program, not just weights: it is loaded only when its SHA-256 equals :data:`I3D_SHA256`,
the one place where the trusted file is named. No hash published by the distributor could be verified from
here, so the constant is unset and FVD reports itself unavailable until whoever installs the file sets it (after
checking the file against its source).
"""
import hashlib
import warnings

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from evaluation.weights import Unavailable, missing_weights
from modules.render import frames_to_tensor
from modules.weights import find_weights

I3D_FILE = 'i3d_torchscript.pt'
#: SHA-256 (hex) of the one trusted ``i3d_torchscript.pt``; None: no file is trusted (FVD unavailable).
I3D_SHA256 = None
CLIP_LENGTH = 16
I3D_SIZE = 224


def clip_starts(num_frames, clip_length=CLIP_LENGTH, stride=CLIP_LENGTH):
    """First-frame indices of the clips of a sequence.

    Args:
        num_frames: int, frames in the sequence.
        clip_length: int, frames per clip.
        stride: int >= 1, frames between consecutive clip starts.
    Returns:
        list[int] (empty when the sequence is shorter than one clip).
    Raises:
        ValueError: stride or clip_length < 1.
    """
    if stride < 1 or clip_length < 1:
        raise ValueError(f"clip_length and stride must be >= 1, got {clip_length}, {stride}")
    return list(range(0, num_frames - clip_length + 1, stride))


class I3DFeatures:
    """I3D clip features of a video for FVD.

    Args:
        model: the loaded TorchScript I3D (see module docstring for its call convention).
        device: torch device.
        stride: int, frames between clip starts.
        batch_size: clips per forward pass.
    Call with frames (T, H, W, 3) uint8 RGB; returns (num_clips, F) float64 numpy features
    (F = 400 for the I3D checkpoint); num_clips = len(clip_starts(T, 16, stride)).
    Raises ValueError when the sequence is shorter than one clip.
    """

    def __init__(self, model, device, stride=CLIP_LENGTH, batch_size=2):
        self.model = model
        self.device = torch.device(device)
        self.stride = stride
        self.batch_size = batch_size

    def _clip_tensor(self, frames, start):
        clip = frames_to_tensor(frames[start:start + CLIP_LENGTH], self.device)      # (16, 3, H, W) in [0, 1]
        clip = F.interpolate(clip, size=(I3D_SIZE, I3D_SIZE), mode='bilinear', align_corners=False)
        return (clip * 2 - 1).permute(1, 0, 2, 3)                                     # (3, 16, 224, 224)

    @torch.no_grad()
    def __call__(self, frames):
        starts = clip_starts(len(frames), CLIP_LENGTH, self.stride)
        if not starts:
            raise ValueError(f"FVD needs sequences of at least {CLIP_LENGTH} frames, got {len(frames)}; "
                             "use more frames per sequence (rd_params.num_frames)")
        features = []
        for i in range(0, len(starts), self.batch_size):
            batch = torch.stack([self._clip_tensor(frames, s) for s in starts[i:i + self.batch_size]])
            out = self.model(batch, rescale=False, resize=False, return_features=True)
            features.append(out.reshape(len(batch), -1).double().cpu().numpy())
        return np.concatenate(features)


def build_i3d(device, weights_dir=None, stride=CLIP_LENGTH):
    """Load the I3D TorchScript checkpoint without network access.

    Args:
        device: torch device.
        weights_dir: str | Path | None, searched before the torch hub cache.
        stride: clip stride in frames.
    Returns:
        I3DFeatures, or Unavailable naming ``i3d_torchscript.pt`` and where to put it.
    """
    unavailable = missing_weights('fvd', [I3D_FILE], weights_dir)
    if unavailable is not None:
        return unavailable
    found, _ = find_weights([I3D_FILE], weights_dir)
    path = found[I3D_FILE]
    if I3D_SHA256 is None:
        return Unavailable('fvd', f'{path} is TorchScript (code) and no trusted SHA-256 is pinned: verify the file '
                                  f'and set evaluation.fvd.I3D_SHA256 to its sha256 to enable FVD')
    actual = file_sha256(path)
    if actual != I3D_SHA256.lower():
        return Unavailable('fvd', f'{path} is refused: its SHA-256 {actual} is not the pinned {I3D_SHA256} '
                                  f'(evaluation.fvd.I3D_SHA256); a TorchScript file runs code, so only the '
                                  f'trusted file is loaded')
    with warnings.catch_warnings():          # torch marks TorchScript as deprecated; the checkpoint is TorchScript
        warnings.simplefilter('ignore', FutureWarning)
        model = torch.jit.load(str(found[I3D_FILE]), map_location=torch.device(device)).eval()
    return I3DFeatures(model, device, stride)


def file_sha256(path):
    """SHA-256 of a file (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def frechet_distance(features_a, features_b):
    """Frechet distance between Gaussians fitted to two feature sets.

    d = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))   (Heusel et al. 2017; Unterthiner et al. 2019)

    Args:
        features_a: (Na, F) array, Na >= 2.
        features_b: (Nb, F) array, Nb >= 2.
    Returns:
        float >= 0 (unitless; 0 for identical sets).
    Raises:
        ValueError: fewer than 2 samples in a set or mismatched feature sizes.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, F) with the same F, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FVD needs at least 2 clips per set, got {len(a)} and {len(b)}: "
                         "evaluate more frames or sequences")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    return float(max(value, 0.0))
