"""Video data sets for Sparse2Dense training and evaluation (FOMM-style, lazy frame reading).

A data root holds ``train/`` and ``test/`` (or, flat, the videos themselves: then both splits use every video).
Each entry of a split is one of

- a video file (``.mp4 .mov .avi .webm .mkv .gif``), read with ``video_io.VideoFrames`` (PyAV): only the requested
  frames are decoded, after a seek to the key frame before them; the per-video frame index (presentation
  timestamps, key frames) is built from the container's packets once and cached;
- a folder of frames (``.png .jpg .jpeg .bmp``, sorted by file name);
- a horizontal strip image (``.png .jpg``): frames side by side, each with the aspect ratio of ``frame_shape``
  (square frames for a square ``frame_shape``), as in the FOMM data sets.

Video names may follow the TED-Talk convention ``<video_id>#<start>#<end>.mp4``: with ``id_sampling`` one training
item is drawn per video id (for every entry type), so long talks with many clips do not dominate an epoch.

Vertex labels (optional): ``<root_dir>/<vertices_dir>/<entry stem>.npz`` with ``vertices`` (T, N, 2) float32 in
normalized image coordinates [-1, 1] (x = 2 * px / (W - 1) - 1, x right, y down), ``confidence`` (T, N) in [0, 1]
(0 = not detected), optionally ``flip_index`` (N,) int64 (landmark permutation under a horizontal flip).

Public API: ``FramesDataset``, ``DatasetRepeater``, ``open_frames`` (an entry path -> frame reader), ``to_tensor``,
``VideoReadError``.
"""
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

# one exception for every unreadable video, frame folder, strip or label file (data tools and training alike)
from modules.render import tensor_to_frames
from optical_flow import flow_target
from video_io import VideoFrames, VideoReadError

LOG = logging.getLogger(__name__)

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.webm', '.mkv', '.gif')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')
STRIP_EXTENSIONS = ('.png', '.jpg')

def _bad_file(path, reason):
    return VideoReadError(f"cannot read '{path}': {reason}. Re-encode or remove the file, or set "
                          f"dataset_params.skip_bad_videos: true to skip unreadable videos with a warning.")


def to_tensor(frame, frame_shape=None):
    """uint8 frame (H, W, 3) -> float32 tensor (3, h, w) in [0, 1], resized (bilinear, antialiased) to
    ``frame_shape`` = (h, w[, 3]) when given and different."""
    tensor = torch.tensor(frame).permute(2, 0, 1).float().div_(255.0)
    if frame_shape is not None and tuple(tensor.shape[1:]) != tuple(frame_shape[:2]):
        tensor = F.interpolate(tensor[None], size=tuple(frame_shape[:2]), mode='bilinear', align_corners=False,
                               antialias=True)[0].clamp_(0.0, 1.0)
    return tensor


class FolderFrames:
    """Lazy frame reader for a folder of image files (sorted by name); one image read per requested frame."""

    def __init__(self, path):
        self.path = str(path)
        self.files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise _bad_file(self.path, f"frame folder without images {IMAGE_EXTENSIONS}")

    @property
    def num_frames(self):
        return len(self.files)

    def _load(self, file):
        try:
            with Image.open(file) as image:
                return np.asarray(image.convert('RGB'))
        except OSError as error:
            raise _bad_file(file, f"broken image ({error})") from error

    def read(self, indices):
        return [self._load(self.files[i]) for i in indices]

    def __iter__(self):
        return (self._load(file) for file in self.files)


class StripFrames:
    """Frames of a horizontal strip image (H, T * w, 3); the frame width w keeps the aspect ratio of ``frame_shape``
    (w = H for square frames). Raises ``VideoReadError`` when the strip width is not a multiple of w."""

    def __init__(self, path, frame_shape):
        self.path = str(path)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except OSError as error:
            raise _bad_file(self.path, f"broken image ({error})") from error
        self.frame_width = round(height * frame_shape[1] / frame_shape[0])
        if width % self.frame_width:
            raise _bad_file(self.path, f"strip width {width} is not a multiple of the frame width {self.frame_width} "
                                       f"(height {height} x aspect of frame_shape {tuple(frame_shape[:2])})")
        self._num_frames = width // self.frame_width

    @property
    def num_frames(self):
        return self._num_frames

    def read(self, indices):
        try:
            with Image.open(self.path) as image:
                strip = np.asarray(image.convert('RGB'))
        except OSError as error:
            raise _bad_file(self.path, f"broken image ({error})") from error
        return [strip[:, i * self.frame_width:(i + 1) * self.frame_width] for i in indices]

    def __iter__(self):
        return iter(self.read(range(self.num_frames)))


def open_frames(path, frame_shape=(256, 256, 3)):
    """Frame reader for a data set entry: video file, folder of frames or strip image.

    Returns an object with ``num_frames``, ``read(indices) -> list of uint8 (H, W, 3)`` and iteration over all frames.
    ``frame_shape`` only sets the frame width of strips. Raises ``VideoReadError`` for unsupported paths.
    """
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return VideoFrames(path)
    if suffix in STRIP_EXTENSIONS:
        return StripFrames(path, frame_shape)
    raise VideoReadError(f"'{path}' is not a supported entry: use a video {VIDEO_EXTENSIONS}, a folder of frames "
                         f"{IMAGE_EXTENSIONS} or a horizontal strip image {STRIP_EXTENSIONS}")


def find_entries(directory, exclude=()):
    """Sorted data set entries (videos, strips, frame folders) directly inside ``directory``; names in ``exclude``
    (e.g. the vertex label folder) and hidden files are skipped."""
    entries = []
    for path in sorted(Path(directory).iterdir()):
        if path.name.startswith('.') or path.name in exclude:
            continue
        if path.is_dir():
            if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
                entries.append(path)
        elif path.suffix.lower() in VIDEO_EXTENSIONS + STRIP_EXTENSIONS:
            entries.append(path)
    return entries


def entry_stem(path):
    """Name of an entry without extension (folder name for frame folders): the key of its vertex label file."""
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def video_id(path):
    """Video identity for ``id_sampling``: the part of the stem before the first '#' (TED ``id#start#end``)."""
    return entry_stem(path).split('#')[0]


class FramesDataset(Dataset):
    """Pairs of frames (source, driving) of one video, with identical augmentation and vertex labels.

    Args:
        root_dir: data root with ``train/`` and ``test/`` (or a flat folder: both splits then use all entries).
        frame_shape: (H, W, 3); frames of other sizes are resized (bilinear, antialiased).
        id_sampling: one item per video id (``id#start#end`` names) instead of one per entry (training split only).
        is_train: training split with random frames and augmentation; else the test split, deterministic frames
            (source = frame 0, driving = a frame drawn with seed ``index``), no augmentation.
        augmentation_params: ``flip_param: {horizontal_flip, time_flip}``, ``jitter_param: {brightness, contrast,
            saturation, hue}`` (torchvision ColorJitter ranges), ``crop_param: {scale: [min, max]}`` (random crop of
            that area fraction, frame aspect kept, resized back). Any may be absent.
        vertices_dir: folder (relative to ``root_dir``) with ``<entry stem>.npz`` vertex labels.
        num_vertices: N of the vertex head; label files must match it.
        skip_bad_videos: unreadable entries are skipped with a logged warning instead of raising.
        split: the folder to read, 'train' or 'test' (default: 'train' when ``is_train``, else 'test'); e.g. the
            validation set is read from 'train' with ``is_train=False``.
        names: keep only the entries with these stems (None: all); ``exclude_names``: drop these stems. Together they
            carve a validation split out of the training clips (``dataset_params.validation_names``).
        cache_frames: keep every entry's frames, resized to ``frame_shape`` (uint8), in memory after its first use
            (per data-loader worker), so later epochs decode nothing. Memory: all frames of the split at
            ``frame_shape`` (e.g. 7,000 frames at 128x128: 0.35 GB per worker).
        optical_flow: items also carry the teacher motion of the pair after augmentation
            (:func:`optical_flow.flow_target`, OpenCV DIS both ways: about 17 ms per pair at 128x128 on one core):
            ``flow`` float32 (2, H, W), the backward flow from driving to source in normalised coordinates, and
            ``flow_confidence`` float32 (1, H, W) in {0, 1} (forward-backward consistent pixels). Set by training
            when ``loss_weights.motion_flow`` or ``keypoint_flow`` > 0.

    Item: ``source``, ``driving`` float32 (3, H, W) in [0, 1]; ``name`` (str, entry stem); ``vertices`` float32
    (N, 2) in [-1, 1] for the driving frame; ``vertex_confidence`` float32 (N,) in [0, 1], zeros without labels.
    Horizontal flips mirror x and permute landmarks with the label file's ``flip_index``; labelled entries without
    ``flip_index`` are never flipped. Crops move the labels and zero the confidence of vertices falling outside.

    Raises:
        FileNotFoundError: ``root_dir`` or the split folder does not exist, or holds no entries.
        VideoReadError: an entry or label file is unreadable (unless ``skip_bad_videos``) or labels have the wrong
            shape.
    """

    def __init__(self, root_dir, frame_shape=(256, 256, 3), id_sampling=False, is_train=True,
                 augmentation_params=None, vertices_dir='vertices', num_vertices=0, skip_bad_videos=False,
                 cache_frames=False, split=None, names=None, exclude_names=(), optical_flow=False):
        self.root_dir = Path(root_dir)
        self.optical_flow = optical_flow
        self.cache = {} if cache_frames else None
        if not self.root_dir.is_dir():
            raise FileNotFoundError(f"data root '{root_dir}' does not exist: set dataset_params.root_dir to a folder "
                                    f"with train/ and test/ (or a flat folder of videos)")
        self.frame_shape = tuple(frame_shape)
        self.is_train = is_train
        self.vertices_dir = self.root_dir / vertices_dir if vertices_dir else None
        self.num_vertices = int(num_vertices)
        self.skip_bad_videos = skip_bad_videos
        split = split or ('train' if is_train else 'test')
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        split_dir = self.root_dir / split
        if (self.root_dir / 'train').is_dir() or (self.root_dir / 'test').is_dir():
            if not split_dir.is_dir():
                raise FileNotFoundError(f"'{split_dir}' does not exist: a data root with train/ needs test/ too")
        else:
            split_dir = self.root_dir
        self.split_dir = split_dir
        self.entries = [path for path in find_entries(split_dir, exclude={vertices_dir} if vertices_dir else ())
                        if (names is None or entry_stem(path) in names) and entry_stem(path) not in exclude_names]
        if names is not None:
            absent = sorted(set(names) - {entry_stem(path) for path in self.entries})
            if absent:
                raise FileNotFoundError(f"clips {absent} are not in '{split_dir}': fix dataset_params.validation_names "
                                        f"(names are the clip stems, e.g. 'head10')")
        if not self.entries:
            raise FileNotFoundError(f"no videos, frame folders or strips found in '{split_dir}' (videos: "
                                    f"{VIDEO_EXTENSIONS}, strips: {STRIP_EXTENSIONS}, folders of {IMAGE_EXTENSIONS})")
        self.id_sampling = id_sampling and is_train
        groups = {}
        for path in self.entries:
            groups.setdefault(video_id(path) if self.id_sampling else str(path), []).append(path)
        self.groups = list(groups.values())
        self.bad = set()
        aug = augmentation_params or {}
        flip = aug.get('flip_param') or {}
        self.horizontal_flip = bool(flip.get('horizontal_flip', False))
        self.time_flip = bool(flip.get('time_flip', False))
        jitter = aug.get('jitter_param')
        self.jitter = T.ColorJitter(**jitter) if jitter else None
        crop = aug.get('crop_param')
        self.crop_scale = tuple(crop['scale']) if crop else None

    def __len__(self):
        return len(self.groups)

    def reader(self, path):
        """Frame reader of one entry (see ``open_frames``)."""
        return open_frames(path, self.frame_shape)

    def load_labels(self, path, num_frames):
        """Vertex labels of an entry: (vertices (T, N, 2), confidence (T, N), flip_index (N,) or None), or None when
        there is no label file. Raises ``VideoReadError`` for a malformed file or shapes not matching the video."""
        if self.vertices_dir is None:
            return None
        file = self.vertices_dir / (entry_stem(path) + '.npz')
        if not file.exists():
            return None
        try:
            with np.load(file, allow_pickle=False) as data:
                vertices = data['vertices'].astype(np.float32)
                confidence = data['confidence'].astype(np.float32)
                flip_index = data['flip_index'].astype(np.int64) if 'flip_index' in data else None
        except (OSError, KeyError, ValueError) as error:
            raise VideoReadError(f"vertex label file '{file}' is unreadable ({error}); re-run "
                                 f"tools/extract_vertices.py for it") from error
        expected = (num_frames, self.num_vertices, 2)
        if vertices.shape != expected or confidence.shape != expected[:2]:
            raise VideoReadError(f"vertex label file '{file}' has vertices {vertices.shape} / confidence "
                                 f"{confidence.shape}, expected {expected} / {expected[:2]} (frames of '{path}', "
                                 f"model_params.vertex_head_params.num_vertices); re-extract the labels or fix the "
                                 f"config")
        return vertices, confidence, flip_index

    def _pick(self, index):
        group = self.groups[index]
        if len(group) == 1:
            return group[0]
        return group[int(torch.randint(len(group), ()))]

    def _frame_pair(self, index, num_frames):
        if self.is_train:
            pair = torch.sort(torch.randint(num_frames, (2,))).values.tolist()
            if self.time_flip and torch.rand(()) < 0.5:
                pair = pair[::-1]
            return pair
        generator = torch.Generator().manual_seed(index)
        return [0, int(torch.randint(num_frames, (), generator=generator))]

    def __getitem__(self, index):
        for attempt in range(len(self.groups)):
            path = self._pick(index)
            try:
                return self._item(index, path)
            except VideoReadError as error:
                if not self.skip_bad_videos:
                    raise
                if path not in self.bad:
                    LOG.warning("skipping unreadable entry: %s", error)
                    self.bad.add(path)
                index = (index + 1) % len(self.groups)
        raise VideoReadError(f"every entry in '{self.split_dir}' is unreadable (see the warnings above)")

    def _frames(self, path, frame_ids):
        """float32 (len(frame_ids), 3, H, W) in [0, 1] at ``frame_shape``, from the reader or the frame cache."""
        if self.cache is None:
            return torch.stack([to_tensor(frame, self.frame_shape) for frame in self.reader(path).read(frame_ids)])
        if path not in self.cache:
            self.cache[path] = torch.stack([(to_tensor(frame, self.frame_shape) * 255).round().to(torch.uint8)
                                            for frame in self.reader(path)])
        return self.cache[path][list(frame_ids)].float() / 255

    def _num_frames(self, path):
        return len(self.cache[path]) if self.cache is not None and path in self.cache else self.reader(path).num_frames

    def _item(self, index, path):
        num_frames = self._num_frames(path)
        frame_ids = self._frame_pair(index, num_frames)
        frames = self._frames(path, frame_ids)
        labels = self.load_labels(path, num_frames)
        if labels is None:
            vertices = torch.zeros(self.num_vertices, 2)
            confidence = torch.zeros(self.num_vertices)
            flip_index = torch.arange(self.num_vertices)
            can_flip = True
        else:
            vertices = torch.from_numpy(labels[0][frame_ids[1]])
            confidence = torch.from_numpy(labels[1][frame_ids[1]])
            flip_index = None if labels[2] is None else torch.from_numpy(labels[2])
            can_flip = flip_index is not None
        if self.is_train:
            frames, vertices, confidence = self._augment(frames, vertices, confidence, flip_index, can_flip)
        item = {'source': frames[0].contiguous(), 'driving': frames[1].contiguous(), 'name': entry_stem(path),
                'vertices': vertices.contiguous(), 'vertex_confidence': confidence.contiguous()}
        if self.optical_flow:
            source, driving = tensor_to_frames(frames).numpy()
            offsets, flow_confidence = flow_target(source, driving)
            item.update(flow=torch.from_numpy(offsets), flow_confidence=torch.from_numpy(flow_confidence))
        return item

    def _augment(self, frames, vertices, confidence, flip_index, can_flip):
        """Same random flip / crop / colour jitter on both frames (2, 3, H, W); labels (N, 2), (N,) follow."""
        if self.horizontal_flip and can_flip and torch.rand(()) < 0.5:
            frames = frames.flip(-1)
            vertices = vertices[flip_index] * torch.tensor([-1.0, 1.0])
            confidence = confidence[flip_index]
        if self.crop_scale is not None:
            height, width = frames.shape[-2:]
            aspect = width / height
            top, left, crop_h, crop_w = T.RandomResizedCrop.get_params(frames, self.crop_scale, (aspect, aspect))
            frames = TF.resized_crop(frames, top, left, crop_h, crop_w, [height, width], antialias=True)
            frames = frames.clamp(0.0, 1.0)
            # pixel centres: new_px = (px - left + 0.5) * W / crop_w - 0.5 (as resized_crop, align_corners=False)
            size = torch.tensor([width, height], dtype=torch.float32)
            offset = torch.tensor([left, top], dtype=torch.float32)
            scale = size / torch.tensor([crop_w, crop_h], dtype=torch.float32)
            pixels = (vertices + 1) * (size - 1) / 2
            pixels = (pixels - offset + 0.5) * scale - 0.5
            vertices = 2 * pixels / (size - 1) - 1
            inside = (vertices.abs() <= 1).all(dim=-1)
            confidence = confidence * inside
            vertices = vertices.clamp(-1.0, 1.0)
        if self.jitter is not None:
            order, brightness, contrast, saturation, hue = T.ColorJitter.get_params(
                self.jitter.brightness, self.jitter.contrast, self.jitter.saturation, self.jitter.hue)
            adjust = {0: (TF.adjust_brightness, brightness), 1: (TF.adjust_contrast, contrast),
                      2: (TF.adjust_saturation, saturation), 3: (TF.adjust_hue, hue)}
            for fn_id in order.tolist():
                fn, factor = adjust[fn_id]
                if factor is not None:
                    frames = fn(frames, factor)
        return frames, vertices, confidence

    def read_clip(self, index, num_frames=None):
        """Frames of test entry ``index`` for validation / evaluation, without augmentation.

        Returns dict: ``video`` float32 (T, 3, H, W) in [0, 1] with T = ``num_frames`` frames evenly spaced from the
        first to the last (all frames when None), ``frame_indices`` (T,) int64, ``vertices`` (T, N, 2),
        ``vertex_confidence`` (T, N) (zeros without labels), ``name``, ``path``. Only those T frames are decoded.
        """
        path = self.groups[index][0]
        total = self._num_frames(path)
        count = total if num_frames is None else min(num_frames, total)
        frame_ids = np.unique(np.round(np.linspace(0, total - 1, count)).astype(np.int64)).tolist()
        video = self._frames(path, frame_ids)
        labels = self.load_labels(path, total)
        if labels is None:
            vertices = torch.zeros(len(frame_ids), self.num_vertices, 2)
            confidence = torch.zeros(len(frame_ids), self.num_vertices)
        else:
            vertices = torch.from_numpy(labels[0][frame_ids])
            confidence = torch.from_numpy(labels[1][frame_ids])
        return {'video': video, 'frame_indices': torch.tensor(frame_ids), 'vertices': vertices,
                'vertex_confidence': confidence, 'name': entry_stem(path), 'path': str(path)}


def group_weights(names, sampling_groups):
    """Per-item sampling weights that draw every group of clips equally often, whatever its number of clips.

    A recipe option (``dataset_params.sampling_groups``), not in FOMM or the paper: the prepared human-video set is
    mostly close-ups (talking heads, faces), while the codec's users code upper-body speakers (TED) and full bodies.

    Args:
        names: clip stems of the data set's items, in item order (e.g. ``['face01', 'half08', ...]``).
        sampling_groups: {group name: list of name prefixes}, e.g. ``{'close_up': ['face', 'head'],
            'upper_body': ['half', 'ted'], 'full_body': ['full']}``; a clip belongs to the group one of whose
            prefixes starts its name.
    Returns:
        (len(names),) float64 weights, summing to 1; each group's items share
        1 / len(sampling_groups) equally.
    Raises:
        ValueError: a clip matches no group or two groups, or a group matches no clip.
    """
    members = {group: [] for group in sampling_groups}
    for index, name in enumerate(names):
        matches = [group for group, prefixes in sampling_groups.items()
                   if any(name.startswith(prefix) for prefix in prefixes)]
        if len(matches) != 1:
            raise ValueError(f"clip '{name}' matches {len(matches)} of dataset_params.sampling_groups "
                             f"{dict(sampling_groups)} (needs exactly one): add or fix a name prefix")
        members[matches[0]].append(index)
    empty = [group for group, indices in members.items() if not indices]
    if empty:
        raise ValueError(f"dataset_params.sampling_groups {empty} match no training clip: remove them or fix "
                         f"their name prefixes")
    weights = np.zeros(len(names))
    for indices in members.values():
        weights[indices] = 1 / (len(members) * len(indices))
    return weights


class DatasetRepeater(Dataset):
    """The wrapped data set ``num_repeats`` times per epoch (FOMM), so short data sets give useful epochs.

    Args:
        dataset: the data set; ``num_repeats``: epoch length in units of ``len(dataset)``.
        weights: None (every item ``num_repeats`` times), or (len(dataset),) non-negative item weights: item i then
            appears ``round(num_repeats * len(dataset) * weights[i] / sum(weights))`` times per epoch (largest
            remainder, so the epoch length stays ``num_repeats * len(dataset)``), e.g. from :func:`group_weights`.
            The epoch is a fixed multiset of items; the data loader's sampler shuffles it.
    Raises:
        ValueError: weights of the wrong length, negative, or all zero.
    """

    def __init__(self, dataset, num_repeats=100, weights=None):
        self.dataset = dataset
        self.num_repeats = num_repeats
        total = num_repeats * len(dataset)
        if weights is None:
            self.index = np.arange(total) % len(dataset)
            return
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(dataset),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(dataset)} non-negative numbers, not all zero")
        share = total * weights / weights.sum()
        counts = np.floor(share).astype(np.int64)
        counts[np.argsort(counts - share, kind='stable')[:total - counts.sum()]] += 1
        self.index = np.repeat(np.arange(len(dataset)), counts)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, index):
        return self.dataset[int(self.index[index])]
