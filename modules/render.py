"""The decoder's render loop, written once: encode the key frame once, then render every frame from keypoints.

Used by the codec's decoder (keypoints from the bitstream), the uncompressed reconstruction and the evaluation
(keypoints of each original frame, :func:`reconstruct`) and the training validation.
"""
import time

import numpy as np
import torch


def frames_to_tensor(frames, device='cpu'):
    """(B, H, W, 3) uint8 RGB numpy -> (B, 3, H, W) float32 tensor in [0, 1] on ``device``.

    Raises:
        ValueError: not a uint8 (B, H, W, 3) array.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (B, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0


def tensor_to_frames(images):
    """(B, 3, H, W) float tensor in [0, 1] -> (B, H, W, 3) uint8 RGB tensor on the CPU (clamped, rounded)."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu()


#: smallest MSE used in PSNR (identical images score 100 dB instead of infinity)
MSE_FLOOR = 1e-10


def psnr_from_mse(mse):
    """PSNR in dB of a peak-1 signal from its MSE (tensor; floored at MSE_FLOOR)."""
    return 10 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def psnr_rgb(x, y):
    """RGB PSNR per image. x, y: (B, 3, H, W) in [0, 1]. Returns (B,) dB (100 dB for identical images).

    The evaluation's PSNR (evaluation/metrics.py) and the encoder's refresh decision (coding/codec.py) use it.
    """
    return psnr_from_mse(((x - y) ** 2).mean(dim=(1, 2, 3)))


def render_keypoints(generator, source, kp_source, keypoints):
    """Encode the key frame once (now), then render one output per keypoint entry (lazily, as they are requested).

    Args:
        generator: the OcclusionAwareGenerator.
        source: (1, 3, H, W) key-reference frame in [0, 1].
        kp_source: keypoints of the key frame, a tensor (1, K, 3) in [-1, 1].
        keypoints: iterable of keypoint tensors (B, K, 3) in [-1, 1] of the frames to render.
    Returns:
        an iterator of (keypoint tensor, the generator's output dict ('prediction' (B, 3, H, W), 'F_refine', ...)),
        one per entry.
    Source: paper Sec. 3 (decoder); FOMM's reconstruction loop (Siarohin et al. 2019).
    """
    features = generator.encode_source(source)
    return ((kp_driving, generator.render(features, kp_source, kp_driving)) for kp_driving in keypoints)


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@torch.no_grad()
def reconstruct(models, frames, batch_size=4):
    """Render every frame from the first one, driven by its own keypoints (no coding).

    Args:
        models: modules.build.InferenceModels.
        frames: (T, H, W, 3) uint8 RGB at the model resolution.
        batch_size: frames rendered per forward pass.
    Returns:
        dict: 'frames' (T, H, W, 3) uint8 RGB prediction, 'vertices' (T, N, 2) float32 in [-1, 1],
        'kp_driving' (T, K, 3) float32 keypoints in [-1, 1], 'seconds' (float, total render time),
        'vertex_head_seconds' (float, total time spent in the vertex head).
    Raises:
        ValueError: frames are not uint8 (T, H, W, 3).
    Source: FOMM reconstruction protocol (Siarohin et al. 2019); paper Sec. 3 (decoder).
    """
    device = models.device
    source = frames_to_tensor(frames[:1], device)
    kp_source = models.kp_detector(source)
    driving = (models.kp_detector(frames_to_tensor(frames[first:first + batch_size], device))
               for first in range(0, len(frames), batch_size))
    rendered = render_keypoints(models.generator, source, kp_source, driving)
    outputs, vertices, keypoints = [], [], []
    vertex_seconds = 0.0
    start = time.perf_counter()
    for kp_driving, out in rendered:
        _synchronize(device)
        tick = time.perf_counter()
        vertices.append(models.vertex_head(out['F_refine']).float().cpu())
        _synchronize(device)
        vertex_seconds += time.perf_counter() - tick
        outputs.append(tensor_to_frames(out['prediction']))
        keypoints.append(kp_driving.float().cpu())
    return dict(frames=torch.cat(outputs).numpy(), vertices=torch.cat(vertices).numpy(),
                kp_driving=torch.cat(keypoints).numpy(), seconds=time.perf_counter() - start,
                vertex_head_seconds=vertex_seconds)
