"""Test sequences for evaluation: which videos, their first T frames at the model resolution, fps and labels.

The videos are the test split of a data root read by frames_dataset.FramesDataset (``<root>/test/`` or a flat
folder), so evaluation sees exactly the entries, frame resizing and vertex label files that training validates on.
"""
import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from frames_dataset import VIDEO_EXTENSIONS, FramesDataset, entry_stem, to_tensor
from modules.render import tensor_to_frames
from video_io import VideoReadError, probe


@dataclass
class Sequence:
    """One test sequence.

    Attributes:
        name: entry stem (e.g. 'head04').
        path: the video / frame folder / strip.
        frames: (T, H, W, 3) uint8 RGB at the model resolution (dataset_params.frame_shape): the reference.
        fps: the clip's own frame rate (frames/s), or None for frame folders / strips (no rate stored).
        vertices: (T, N, 2) float32 teacher vertices in [-1, 1] or None (no label file).
        confidence: (T, N) float32 in [0, 1] or None.
    """
    name: str
    path: Path
    frames: np.ndarray
    fps: object
    vertices: object = None
    confidence: object = None


def evaluation_dataset(config, root_dir=None):
    """The test split as a FramesDataset (no augmentation) for ``config``.

    Args:
        config: full config dict (dataset_params, model_params.vertex_head_params.num_vertices).
        root_dir: data root overriding dataset_params.root_dir.
    Raises:
        FileNotFoundError: no data root / no entries (message says what to set).
    """
    dp = config['dataset_params']
    return FramesDataset(root_dir or dp['root_dir'], frame_shape=dp['frame_shape'], is_train=False,
                         vertices_dir=dp.get('vertices_dir', 'vertices'),
                         num_vertices=config['model_params']['vertex_head_params']['num_vertices'])


def _clip_fps(path):
    try:
        return Fraction(probe(path).fps)
    except VideoReadError:
        return None


def load_sequences(dataset, num_frames=None, names=None):
    """Yield the test sequences (first ``num_frames`` consecutive frames of each entry), one at a time.

    Args:
        dataset: FramesDataset (see evaluation_dataset).
        num_frames: frames per sequence (None: all); shorter videos give all their frames.
        names: optional iterable of entry stems to keep (in dataset order).
    Yields:
        Sequence.
    Raises:
        ValueError: a requested name is not in the test split.
    """
    entries = [group[0] for group in dataset.groups]
    if names:
        wanted = list(names)
        known = {entry_stem(p) for p in entries}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise ValueError(f"videos {missing} are not in the test split {dataset.split_dir} "
                             f"(it has {sorted(known)}); fix rd_params.videos")
        entries = [p for p in entries if entry_stem(p) in wanted]
    for path in entries:
        reader = dataset.reader(path)
        total = reader.num_frames
        count = total if num_frames is None else min(int(num_frames), total)
        frames = np.stack([tensor_to_frames(to_tensor(f, dataset.frame_shape)[None])[0].numpy()
                           for f in itertools.islice(iter(reader), count)])      # decoded lazily, in order
        labels = dataset.load_labels(path, total)
        vertices, confidence = (None, None) if labels is None else (labels[0][:count], labels[1][:count])
        fps = _clip_fps(path) if Path(path).is_file() and Path(path).suffix.lower() in VIDEO_EXTENSIONS else None
        yield Sequence(entry_stem(path), Path(path), frames, fps, vertices, confidence)
