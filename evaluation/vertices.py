"""Vertex accuracy of the decoder's vertex head against teacher labels (``run.py --mode vertices``).

Teacher labels: ``<root_dir>/<vertices_dir>/<video>.npz`` (vertices (T, N, 2) in [-1, 1], confidence (T, N)),
see frames_dataset.py. Errors are measured in pixels at the evaluated (model) resolution H x W, with
px = (x + 1) / 2 * (W - 1) and py = (y + 1) / 2 * (H - 1), on confident labels only
(confidence >= min_confidence):
    vertex_error_px   mean Euclidean distance over all confident (frame, vertex) pairs of a sequence;
    pck5, pck10       fraction of those pairs within 5 / 10 px;
    labelled_vertices number of pairs counted.
"""
from pathlib import Path

import cv2
import numpy as np

from modules.util import to_pixels
from video_io import write_video

TEACHER_COLOUR = (0, 255, 0)
PREDICTED_COLOUR = (255, 0, 0)


def vertex_accuracy(predicted, teacher, confidence, height, width, min_confidence=0.5):
    """Vertex error and PCK of one sequence.

    Args:
        predicted: (T, N, 2) vertices in [-1, 1] from the vertex head.
        teacher: (T, N, 2) teacher vertices in [-1, 1].
        confidence: (T, N) teacher confidence in [0, 1].
        height, width: evaluated frame size in pixels.
        min_confidence: labels below this are ignored.
    Returns:
        dict vertex_error_px (px), pck5, pck10 (fractions in [0, 1]), labelled_vertices (int); the first three
        are None when no label is confident.
    Raises:
        ValueError: shapes do not match.
    """
    predicted, teacher, confidence = np.asarray(predicted), np.asarray(teacher), np.asarray(confidence)
    if predicted.shape != teacher.shape or teacher.shape[:-1] != confidence.shape or teacher.shape[-1] != 2:
        raise ValueError(f"predicted {predicted.shape}, teacher {teacher.shape} and confidence {confidence.shape} "
                         "must be (T, N, 2), (T, N, 2), (T, N): check num_vertices against the label files")
    mask = confidence >= min_confidence
    count = int(mask.sum())
    if count == 0:
        return dict(vertex_error_px=None, pck5=None, pck10=None, labelled_vertices=0)
    error = np.linalg.norm(to_pixels(predicted, height, width) - to_pixels(teacher, height, width), axis=-1)[mask]
    return dict(vertex_error_px=float(error.mean()), pck5=float((error <= 5).mean()),
                pck10=float((error <= 10).mean()), labelled_vertices=count)


def draw_overlay(frames, predicted, teacher=None, confidence=None, min_confidence=0.5, min_size=512):
    """Frames with predicted (red) and confident teacher (green) vertices drawn as dots.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        predicted: (T, N, 2) in [-1, 1].
        teacher, confidence: optional (T, N, 2) / (T, N) labels.
        min_confidence: teacher dots drawn only at or above it.
        min_size: frames are enlarged (nearest neighbour, integer factor) to at least this width for visibility.
    Returns:
        (T, H * s, W * s, 3) uint8 RGB.
    """
    height, width = frames.shape[1:3]
    scale = max(1, -(-min_size // width))
    out = []
    for t, frame in enumerate(frames):
        canvas = np.ascontiguousarray(np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1))
        if teacher is not None:
            keep = confidence[t] >= min_confidence
            for x, y in to_pixels(teacher[t][keep], height, width) * scale:
                cv2.circle(canvas, (int(round(x)), int(round(y))), 2, TEACHER_COLOUR, -1)
        for x, y in to_pixels(predicted[t], height, width) * scale:
            cv2.circle(canvas, (int(round(x)), int(round(y))), 2, PREDICTED_COLOUR, -1)
        out.append(canvas)
    return np.stack(out)


def write_overlay(path, frames, predicted, teacher, confidence, fps, min_confidence=0.5):
    """Write the vertex overlay (see draw_overlay) as an MP4 (H.264 RGB, visually lossless), atomically."""
    write_video(path, draw_overlay(frames, predicted, teacher, confidence, min_confidence), fps, crf=10)


def _mean_rows(rows):
    groups = {}
    for row in rows:
        if row['labelled_vertices']:
            groups.setdefault((row['codec'], row['qp']), []).append(row)
    means = []
    for (codec, qp), members in groups.items():
        mean = dict(codec=codec, qp=qp, sequence=f'mean over {len(members)} labelled sequences')
        for field in ('vertex_error_px', 'pck5', 'pck10', 'labelled_vertices', 'vertex_head_ms_per_frame'):
            values = [m[field] for m in members if m.get(field) is not None]
            mean[field] = float(np.mean(values)) if values else None
        means.append(mean)
    return means


def run_vertices(config, checkpoint_path, out_dir, device='cpu', weights_dir=None):
    """``run.py --mode vertices``: vertex accuracy of the uncompressed reconstruction and of the decoded streams at
    every key-frame QP, the vertex head's time per frame, and an overlay MP4 for one clip.

    Shares the RD pipeline's points and cache (``<out_dir>/cache``): after ``--mode rd`` this is instant.
    Writes ``<out_dir>/vertices/vertices.csv`` (per sequence and point, then means over labelled sequences),
    ``vertices.json`` and ``overlay_<video>_qp<QP>.mp4`` (decoded frames, predicted red, confident teacher green).

    Args:
        config, checkpoint_path, out_dir, device, weights_dir: as evaluation.rd.RDEvaluation.
    Returns:
        list of row dicts (per sequence and point, then the means).
    """
    from coding.codec import Decoder
    from evaluation.rd import RDEvaluation          # evaluation.rd imports this module: import here
    from evaluation.sequences import load_sequences
    from reconstruction import write_csv, write_json
    evaluation = RDEvaluation(config, checkpoint_path, out_dir, device, weights_dir, codecs=('reconstruction', 's2d'))
    records = evaluation.evaluate()
    rows = []
    for record in records:
        row = dict(codec=record['curve'], qp=record['qp'], sequence=record['sequence'],
                   **(record['vertices'] or dict(vertex_error_px=None, pck5=None, pck10=None, labelled_vertices=0)))
        if 'vertex_head_s' in record['seconds']:
            row['vertex_head_ms_per_frame'] = 1000 * record['seconds']['vertex_head_s'] / record['frames']
        rows.append(row)
    rows += _mean_rows(rows)
    out = Path(out_dir) / 'vertices'
    write_csv(out / 'vertices.csv', rows)
    labelled = [r for r in records if r['vertices'] and r['vertices']['labelled_vertices']]
    s2d = [r for r in (labelled or records) if r['codec'] == 's2d']
    qps = sorted({r['qp'] for r in s2d})
    chosen = next(r for r in s2d if r['qp'] == qps[len(qps) // 2])
    seq = next(load_sequences(evaluation.dataset, evaluation.params['num_frames'], [chosen['sequence']]))
    decoded = list(Decoder(checkpoint_path, device).decode((Path(out_dir) / chosen['bitstream']).read_bytes()))
    overlay = out / f"overlay_{seq.name}_qp{chosen['qp']}.mp4"
    write_overlay(overlay, np.stack([f for f, _ in decoded]), np.stack([v for _, v in decoded]), seq.vertices,
                  seq.confidence, float(seq.fps or evaluation.params['fps'] or 25),
                  evaluation.params['vertex_min_confidence'])
    write_json(out / 'vertices.json', dict(
        checkpoint=str(checkpoint_path), device=str(device), overlay=overlay.name,
        labels=f"{evaluation.dataset.vertices_dir} (confidence >= {evaluation.params['vertex_min_confidence']})",
        note='' if labelled else 'no teacher labels found for the test sequences: accuracy not measured',
        rows=rows))
    return rows
