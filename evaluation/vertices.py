"""Vertex accuracy of the decoder's vertex head against teacher labels (``run.py --mode vertices``, whose driver
is evaluation.rd.run_vertices).

Teacher labels: ``<root_dir>/<vertices_dir>/<video>.npz`` (vertices (T, N, 2) in [-1, 1], confidence (T, N)),
see frames_dataset.py. Errors are measured in pixels at the evaluated (model) resolution H x W, with
px = (x + 1) / 2 * (W - 1) and py = (y + 1) / 2 * (H - 1), on confident labels only
(confidence >= min_confidence):
    vertex_error_px   mean Euclidean distance over all confident (frame, vertex) pairs of a sequence;
    pck5, pck10       fraction of those pairs within 5 / 10 px;
    labelled_vertices number of pairs counted.
"""
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
