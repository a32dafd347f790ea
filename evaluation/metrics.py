"""Quality metrics of decoded video against the original, per frame on RGB in [0, 1], averaged per sequence.

Aggregation (stated in every output): each metric is computed per frame, averaged over the frames of a sequence,
and the RD pipeline then averages the sequence values over the sequences (VMAF: libvmaf's per-sequence mean of
its per-frame scores; FVD: one value over all clips of all sequences, see evaluation/fvd.py).

Definitions:
    psnr      10 log10(1 / MSE), MSE over all pixels and the three RGB channels in [0, 1] (dB). MSE is floored at
              1e-10, so identical frames give 100 dB.
    psnr_yuv  (4 PSNR_Y + PSNR_U + PSNR_V) / 6 as in the JVET GFVC evaluation scripts: RGB (8-bit) -> YUV 4:4:4 with
              the BT.601 limited-range matrix YUV_MATRIX + YUV_OFFSET, rounded to 8-bit integers, per-channel PSNR
              with peak 255 (same 1e-10 floor on the MSE in [0, 1] units).
    ssim      piq.ssim, Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, RGB channels averaged, no downsampling.
    ms_ssim   piq.multi_scale_ssim, 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), sigma 1.5, Gaussian
              window 11 for frames of at least 161 px; 5 scales need min(H, W) >= (k - 1) * 16 + 1, so smaller
              frames use the largest odd window k that fits (e.g. 3 at 64 px, see ms_ssim_kernel) and frames under
              33 px are rejected.
    vmaf      evaluation/vmaf.py (libvmaf model vmaf_v0.6.1 on YUV 4:2:0).
    dists, lpips_vgg, lpips_alex   evaluation/learned.py (lower is better).
    fvd       evaluation/fvd.py (lower is better).
    motion    evaluation/motion.py: motion fidelity (MediaPipe Holistic teacher on the original and the decoded
              frames: landmark error / PCK per face, pose and hands; mouth-opening, yaw and pitch correlation over
              time; frames without a face). Not a per-frame score: MetricSuite.motion returns its dict (the RD
              pipeline stores it per point like the vertex accuracy), MetricSuite.sequence leaves it out.
"""
import numpy as np
import piq
import torch

from evaluation.fvd import CLIP_LENGTH, build_i3d
from evaluation.learned import LEARNED_METRICS, build_learned_metric
from evaluation.vmaf import VMAF_MODEL, vmaf
from evaluation.weights import Unavailable
from modules.render import MSE_FLOOR, frames_to_tensor, psnr_from_mse, psnr_rgb

FRAME_METRICS = ('psnr', 'psnr_yuv', 'ssim', 'ms_ssim')
ALL_METRICS = FRAME_METRICS + ('vmaf', 'dists', 'lpips_vgg', 'lpips_alex', 'fvd', 'motion')
#: metrics that are not a per-sequence scalar of MetricSuite.sequence (no BD-rate, no RD plot)
NON_SCALAR = frozenset({'fvd', 'motion'})

# BT.601 limited range ("studio swing"), 8-bit: rows Y, U, V; applied to R, G, B in [0, 255].
YUV_MATRIX = ((0.257, 0.504, 0.098),
              (-0.148, -0.291, 0.439),
              (0.439, -0.368, -0.071))
YUV_OFFSET = (16.0, 128.0, 128.0)
MS_SSIM_SCALES = 5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def rgb_to_yuv444(x):
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) 8-bit YUV 4:4:4 (integers as float, BT.601 limited range)."""
    matrix = torch.tensor(YUV_MATRIX, dtype=x.dtype, device=x.device)
    offset = torch.tensor(YUV_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    yuv = torch.einsum('ij,bjhw->bihw', matrix, x * 255.0) + offset
    return yuv.round().clamp(0, 255)


def psnr_yuv(x, y):
    """GFVC YUV-weighted PSNR per image, (4 Y + U + V) / 6 of per-channel PSNRs.

    x, y: (B, 3, H, W) RGB in [0, 1]. Returns (B,) dB.
    """
    mse = ((rgb_to_yuv444(x) - rgb_to_yuv444(y)) / 255.0).pow(2).mean(dim=(2, 3))   # (B, 3)
    channel_psnr = psnr_from_mse(mse)
    return (4 * channel_psnr[:, 0] + channel_psnr[:, 1] + channel_psnr[:, 2]) / 6


def ssim(x, y):
    """SSIM per image (piq, window 11, sigma 1.5, no downsampling). x, y: (B, 3, H, W) in [0, 1]. Returns (B,)."""
    return piq.ssim(x, y, data_range=1.0, reduction='none', downsample=False)


def ms_ssim_kernel(height, width):
    """Gaussian window for 5-scale MS-SSIM: 11, or the largest odd k with (k - 1) * 16 + 1 <= min(H, W).

    Raises:
        ValueError: frames smaller than 33 px (not even a 3-tap window fits 5 scales).
    """
    side = min(height, width)
    kernel = min(11, (side - 1) // 2 ** (MS_SSIM_SCALES - 1) + 1)
    kernel -= 1 - kernel % 2
    if kernel < 3:
        raise ValueError(f"MS-SSIM with {MS_SSIM_SCALES} scales needs frames of at least 33 px, got "
                         f"{height}x{width}; evaluate at a larger resolution or drop ms_ssim from rd_params.metrics")
    return kernel


def ms_ssim(x, y):
    """5-scale MS-SSIM per image (piq; window from ms_ssim_kernel). x, y: (B, 3, H, W) in [0, 1]. Returns (B,)."""
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    return piq.multi_scale_ssim(x, y, data_range=1.0, reduction='none', scale_weights=weights,
                                kernel_size=ms_ssim_kernel(*x.shape[-2:]))


_FRAME_FUNCTIONS = dict(psnr=psnr_rgb, psnr_yuv=psnr_yuv, ssim=ssim, ms_ssim=ms_ssim)


class MetricSuite:
    """The metrics of one evaluation run: builds what is available, reports what is not.

    Args:
        names: metric names, a subset of ALL_METRICS.
        device: torch device for the frame and learned metrics.
        weights_dir: str | Path | None, looked up before the torch hub cache for learned-metric weights.
        batch_size: frames per forward pass.
        fvd_stride: frames between FVD clip starts.
        vmaf_threads: libvmaf threads.
    Attributes:
        unavailable: dict name -> Unavailable (reason, missing file, where to put it).
        available: names that will be computed, in the order given.
    Raises:
        ValueError: unknown metric names.
    """

    def __init__(self, names=ALL_METRICS, device='cpu', weights_dir=None, batch_size=8, fvd_stride=CLIP_LENGTH,
                 vmaf_threads=1):
        unknown = sorted(set(names) - set(ALL_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(ALL_METRICS)}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.vmaf_threads = vmaf_threads
        self.fvd_stride = fvd_stride
        self.unavailable = {}
        self.learned = {}
        self.i3d = None
        for name in names:
            if name in LEARNED_METRICS:
                built = build_learned_metric(name, self.device, weights_dir)
                if isinstance(built, Unavailable):
                    self.unavailable[name] = built
                else:
                    self.learned[name] = built
            elif name == 'fvd':
                built = build_i3d(self.device, weights_dir, fvd_stride)
                if isinstance(built, Unavailable):
                    self.unavailable[name] = built
                else:
                    self.i3d = built
            elif name == 'motion':
                try:
                    import mediapipe  # noqa: F401  (the teacher of evaluation/motion.py)
                except ImportError as error:
                    self.unavailable[name] = Unavailable(name, f'mediapipe cannot be imported: {error}')
        self.available = [n for n in names if n not in self.unavailable]

    @torch.no_grad()
    def sequence(self, reference, distorted, fps=25.0):
        """Per-sequence scores of every available metric except FVD (see fvd_features).

        Args:
            reference: (T, H, W, 3) uint8 RGB original frames.
            distorted: (T, H, W, 3) uint8 RGB decoded frames, same shape.
            fps: frame rate (VMAF input only).
        Returns:
            dict name -> float, the mean over the T frames (VMAF: libvmaf's pooled mean).
        Raises:
            ValueError: shapes differ or frames are not uint8 RGB.
        """
        reference, distorted = np.asarray(reference), np.asarray(distorted)
        if reference.shape != distorted.shape:
            raise ValueError(f"reference {reference.shape} and distorted {distorted.shape} differ in shape")
        frame_names = [n for n in self.available if n in _FRAME_FUNCTIONS or n in self.learned]
        sums = dict.fromkeys(frame_names, 0.0)
        for start in range(0, len(reference), self.batch_size):
            x = frames_to_tensor(distorted[start:start + self.batch_size], self.device)
            y = frames_to_tensor(reference[start:start + self.batch_size], self.device)
            for name in frame_names:
                function = _FRAME_FUNCTIONS.get(name) or self.learned[name]
                sums[name] += float(function(x, y).sum())
        scores = {name: total / len(reference) for name, total in sums.items()}
        if 'vmaf' in self.available:
            scores['vmaf'] = vmaf(reference, distorted, fps, self.vmaf_threads)['vmaf']
        return {name: scores[name] for name in self.available if name in scores}

    def fvd_features(self, frames):
        """I3D clip features of one sequence for FVD, or None when FVD is not available.

        Args:
            frames: (T, H, W, 3) uint8 RGB, T >= 16.
        Returns:
            (num_clips, 400) float64 numpy array | None.
        """
        return None if self.i3d is None else self.i3d(np.asarray(frames))

    def motion_landmarks(self, frames):
        """Teacher landmarks of original frames, to reuse over several decoded versions (see :meth:`motion`).

        Args:
            frames: (T, H, W, 3) uint8 RGB.
        Returns:
            evaluation.motion.Landmarks | None when the motion metric is not available.
        """
        if 'motion' not in self.available:
            return None
        from evaluation.motion import teacher_landmarks
        return teacher_landmarks(frames)

    def motion(self, reference, distorted, fps, reference_landmarks=None):
        """Motion fidelity of one sequence (evaluation/motion.py), or None when not available.

        Args:
            reference, distorted: (T, H, W, 3) uint8 RGB, same shape. fps: frame rate (> 0).
            reference_landmarks: :meth:`motion_landmarks` of ``reference`` (None: computed here).
        Returns:
            dict (evaluation.motion.FIELDS) | None.
        """
        if 'motion' not in self.available:
            return None
        from evaluation.motion import motion_fidelity
        return motion_fidelity(reference, distorted, fps, reference_landmarks)

    def protocol(self, frame_shape=None):
        """Human-readable definitions of the metrics of this suite (for summary.md / report.json).

        Args:
            frame_shape: optional (H, W) of the evaluated frames, to state the MS-SSIM window used.
        Returns:
            list[str], one line per metric, plus the unavailable ones with their reason.
        """
        lines = ['Per frame on RGB in [0, 1], averaged over the frames of each sequence, then over sequences.']
        text = dict(
            psnr='PSNR: RGB, MSE over the 3 channels, dB (100 dB cap).',
            psnr_yuv='PSNR-YUV: (4 Y + U + V) / 6 of per-channel PSNRs, BT.601 limited-range YUV 4:4:4, 8-bit '
                     '(GFVC scripts).',
            ssim='SSIM: piq, window 11, sigma 1.5, no downsampling.',
            ms_ssim='MS-SSIM: piq, 5 scales, weights ' + ', '.join(map(str, MS_SSIM_WEIGHTS)) + ', window '
                    + (str(ms_ssim_kernel(*frame_shape)) if frame_shape else '11 (smaller for frames < 161 px)')
                    + '.',
            vmaf=f'VMAF: ffmpeg libvmaf, model {VMAF_MODEL}, YUV 4:2:0 BT.601, pooled mean per sequence.',
            dists=LEARNED_METRICS['dists'][1] + '.',
            lpips_vgg=LEARNED_METRICS['lpips_vgg'][1] + '.',
            lpips_alex=LEARNED_METRICS['lpips_alex'][1] + '.',
            fvd=f'FVD: I3D (i3d_torchscript.pt) features of 16-frame clips every {self.fvd_stride} frames, '
                'resized to 224x224, Frechet distance over all clips of the test set.',
            motion='Motion fidelity (evaluation/motion.py): MediaPipe Holistic (0.10.14, video mode, a fresh '
                   'instance per video) on the original and the decoded frames at the evaluated size; landmark '
                   'error in px and normalised (face: by the inter-ocular distance, face-mesh 33-263; pose and '
                   'hands: by the torso, mid-shoulders to mid-hips, of the original), PCK at 0.1 of it, over '
                   'landmarks found in both; Pearson correlation over time of the mouth opening (face-mesh 13-14 / '
                   'inter-ocular distance), head yaw and pitch proxies (nose tip vs cheek edges 234/454), 0 for a '
                   'constant decoded series; frames without a face counted per video.')
        for name in self.available:
            lines.append(text[name])
        for name, why in self.unavailable.items():
            lines.append(str(why))
        return lines
