"""Uncompressed reconstruction (``run.py --mode reconstruction``), FOMM-style: the codec's quality ceiling.

For each test video the first frame is the key-reference frame (uncompressed) and every frame is rendered from
it, driven by that frame's own keypoints (kp_detector on the original frame, no quantisation). Writes, per video,
``<name>.mp4`` (lossless H.264 RGB) and ``<name>.png`` (lossless horizontal strip of the frames) under
``<out>/reconstruction/``, and ``<out>/reconstruction/metrics.csv`` / ``metrics.json`` with the per-video metrics
(per frame, averaged per video, then the mean over videos in the last row).
"""
import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from evaluation.metrics import MetricSuite
from evaluation.params import rd_params
from evaluation.report import write_csv, write_json
from evaluation.sequences import evaluation_dataset, load_sequences
from evaluation.vertices import vertex_accuracy
from modules.build import load_inference_models
from modules.render import reconstruct
from video_io import atomic_path, write_video


def write_strip(path, frames):
    """Write frames (T, H, W, 3) uint8 side by side as one lossless PNG (FOMM strip layout), atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(buffer, format='PNG')
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


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
