"""Uncompressed reconstruction (``run.py --mode reconstruction``), FOMM-style: the codec's quality ceiling.

For each test video the first frame is the key-reference frame (uncompressed) and every frame is rendered from
it, driven by that frame's own keypoints (kp_detector on the original frame, no quantisation). Writes, per video,
``<name>.mp4`` (lossless H.264 RGB) and ``<name>.png`` (lossless horizontal strip of the frames) under
``<out>/reconstruction/``, and ``<out>/reconstruction/metrics.csv`` / ``metrics.json`` with the per-video metrics
(per frame, averaged per video, then the mean over videos in the last row).
"""
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from evaluation.metrics import MetricSuite, frames_to_tensor
from evaluation.params import rd_params
from evaluation.sequences import evaluation_dataset, load_sequences
from evaluation.vertices import vertex_accuracy
from modules.build import load_inference_models
from video_io import atomic_path, write_video


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
    source_features = models.generator.encode_source(source)
    outputs, vertices, keypoints = [], [], []
    vertex_seconds = 0.0
    start = time.perf_counter()
    for first in range(0, len(frames), batch_size):
        driving = frames_to_tensor(frames[first:first + batch_size], device)
        kp_driving = models.kp_detector(driving)
        out = models.generator.render(source_features, kp_source, kp_driving)
        _synchronize(device)
        tick = time.perf_counter()
        vertices.append(models.vertex_head(out['F_refine']).float().cpu())
        _synchronize(device)
        vertex_seconds += time.perf_counter() - tick
        outputs.append((out['prediction'].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu())
        keypoints.append(kp_driving['value'].float().cpu())
    return dict(frames=torch.cat(outputs).numpy(), vertices=torch.cat(vertices).numpy(),
                kp_driving=torch.cat(keypoints).numpy(), seconds=time.perf_counter() - start,
                vertex_head_seconds=vertex_seconds)


def write_strip(path, frames):
    """Write frames (T, H, W, 3) uint8 side by side as one lossless PNG (FOMM strip layout), atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(buffer, format='PNG')
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically (temp file + os.replace)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def write_csv(path, rows):
    """Write a list of dicts as CSV (columns: union of keys, in first-seen order), atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def run_reconstruction(config, checkpoint_path, out_dir, device='cpu', weights_dir=None, root_dir=None,
                       num_frames=None, metrics=None):
    """Reconstruct every test video and write MP4s, PNG strips and per-video metrics.

    Args:
        config: full config dict (dataset_params, model_params, optional rd_params: see evaluation/params.py).
        checkpoint_path: trained checkpoint (*.pth).
        out_dir: output folder; results go to ``<out_dir>/reconstruction/``.
        device: torch device string.
        weights_dir: learned-metric weights folder (see evaluation/weights.py).
        root_dir: data root overriding dataset_params.root_dir (its test split is used).
        num_frames: frames per video (default rd_params.num_frames).
        metrics: metric names (default rd_params.metrics).
    Returns:
        list of per-video result dicts (the rows of metrics.csv, mean row last).
    Raises:
        FileNotFoundError: checkpoint or data missing.
    """
    rd = rd_params(config)
    models = load_inference_models(checkpoint_path, device)
    suite = MetricSuite(metrics or rd['metrics'], device, weights_dir, fvd_stride=rd['fvd_stride'])
    out = Path(out_dir) / 'reconstruction'
    out.mkdir(parents=True, exist_ok=True)
    dataset = evaluation_dataset(config, root_dir or rd['root_dir'])
    rows = []
    for seq in tqdm(load_sequences(dataset, num_frames or rd['num_frames'], rd['videos']), total=len(dataset.groups),
                    desc='reconstruction', unit='video'):
        result = reconstruct(models, seq.frames)
        write_video(out / f'{seq.name}.mp4', result['frames'], seq.fps or 25, crf=0)
        write_strip(out / f'{seq.name}.png', result['frames'])
        row = dict(video=seq.name, frames=len(seq.frames), **suite.sequence(seq.frames, result['frames'],
                                                                              float(seq.fps or 25)))
        if seq.vertices is not None:
            row.update(vertex_accuracy(result['vertices'], seq.vertices, seq.confidence, *seq.frames.shape[1:3],
                                       rd['vertex_min_confidence']))
        motion = suite.motion(seq.frames, result['frames'], float(seq.fps or 25)) or {}   # evaluation/motion.py
        row.update({k: v for k, v in motion.items() if k != 'frames'})
        row['render_ms_per_frame'] = 1000 * result['seconds'] / len(seq.frames)
        row['vertex_head_ms_per_frame'] = 1000 * result['vertex_head_seconds'] / len(seq.frames)
        rows.append(row)
    numeric = [k for k in rows[0] if k not in ('video',)]
    mean = {'video': 'mean over videos'}
    for key in numeric:
        values = [r[key] for r in rows if r.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
    rows.append(mean)
    write_csv(out / 'metrics.csv', rows)
    write_json(out / 'metrics.json', dict(checkpoint=str(checkpoint_path), epoch=models.epoch, device=str(device),
                                          protocol=suite.protocol(dataset.frame_shape[:2]),
                                          videos=rows))
    return rows
