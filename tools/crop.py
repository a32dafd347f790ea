"""Person-centred square crop: one fixed box per clip (a moving crop would add fake camera motion).

Used by ``tools/prepare_dataset.py`` and by the codec, so that a user's video is framed like the training data.

How the box is found (``find_person``):

1. MediaPipe Pose (``mediapipe==0.10.14``, model_complexity 1, video mode; the model ships inside the package and
   runs offline) gives 33 body landmarks per frame. A landmark counts when its visibility is >= 0.5 and it lies in
   the frame.
2. The person's extent in a frame is the bounding box of those landmarks, extended by the head (the pose has no
   landmark on the top of the head): a head size ``h = max(ear-to-ear distance, 2 * eyes-to-mouth distance)`` puts
   a point ``1.1 h`` above the nose and ``0.6 h`` left and right of it. The clip's extent is the union over the
   frames in which a person was found (a clip needs a person in at least ``min_person_fraction`` of its frames,
   else ``NoPersonError``).
3. ``square_box``: side ``L * (1 + 2 * margin)`` with L the larger side of the extent, but never larger than needed:
   if that exceeds the frame's short side, the side becomes the short side, or the extent plus ``min_margin`` on
   each side when the person alone does not fit (full body in a landscape frame; within 3 % of the short side the
   short side is kept, so no thin black border appears). The box is centred on the person and shifted into the
   frame; only a box larger than the frame extends past it, symmetrically, and ``apply_crop`` pads it with black.

Public API: ``CropBox``, ``PersonTrack``, ``NoPersonError``, ``detect_pose``, ``find_person``,
``person_crop_box`` (frames or a video path -> ``CropBox``), ``square_box``, ``apply_crop``,
``POSE_LANDMARK_NAMES``.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# MediaPipe Pose landmark order (33), used by the holistic layout too.
POSE_LANDMARK_NAMES = (
    'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye', 'right_eye_outer',
    'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder', 'right_shoulder', 'left_elbow',
    'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky', 'right_pinky', 'left_index', 'right_index',
    'left_thumb', 'right_thumb', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
    'left_heel', 'right_heel', 'left_foot_index', 'right_foot_index')
MIN_VISIBILITY = 0.5
_NOSE, _LEFT_EYE, _RIGHT_EYE, _LEFT_EAR, _RIGHT_EAR, _MOUTH_LEFT, _MOUTH_RIGHT = 0, 2, 5, 7, 8, 9, 10


class NoPersonError(ValueError):
    """No person (or a person in too few frames) was found in a clip."""


@dataclass(frozen=True)
class CropBox:
    """Square crop in source pixels: columns ``x0 .. x0 + side - 1``, rows ``y0 .. y0 + side - 1``. x0 / y0 may be
    negative and the box may extend past the frame: the part outside is padded (black) by ``apply_crop``."""
    x0: int
    y0: int
    side: int


@dataclass
class PersonTrack:
    """Result of ``find_person``.

    Attributes:
        box: the clip's ``CropBox``.
        landmarks: (T, 33, 3) float32: pose landmark x, y in source pixels and visibility in [0, 1]; NaN rows for
            frames without a detected person. Order: ``POSE_LANDMARK_NAMES``.
        extent: (4,) float: x0, y0, x1, y1 of the person's union extent over the clip (source pixels).
        frame_size: (width, height) of the source frames in pixels.
    """
    box: CropBox
    landmarks: np.ndarray
    extent: np.ndarray
    frame_size: tuple

    @property
    def person_fraction(self):
        """Fraction of frames (in [0, 1]) in which a person was detected."""
        return float(np.mean(~np.isnan(self.landmarks[:, 0, 0]))) if len(self.landmarks) else 0.0


def detect_pose(frames):
    """MediaPipe Pose over a sequence of frames, in video (tracking) mode.

    Args:
        frames: iterable of (H, W, 3) uint8 RGB frames of one clip, in order.
    Returns:
        (T, 33, 3) float32: x, y in pixels (x right, y down, x = normalized x * W) and visibility in [0, 1]; NaN for
        frames without a detected person.
    """
    import mediapipe as mp
    rows = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                min_detection_confidence=0.5, min_tracking_confidence=0.5) as pose:
        for frame in frames:
            height, width = frame.shape[:2]
            result = pose.process(np.ascontiguousarray(frame))
            if result.pose_landmarks is None:
                rows.append(np.full((33, 3), np.nan, np.float32))
            else:
                rows.append(np.array([(p.x * width, p.y * height, p.visibility)
                                      for p in result.pose_landmarks.landmark], np.float32))
    return np.stack(rows) if rows else np.zeros((0, 33, 3), np.float32)


def _frame_extent(landmarks, width, height):
    """Person extent (x0, y0, x1, y1) in one frame from its (33, 3) landmarks, or None."""
    x, y, vis = landmarks[:, 0], landmarks[:, 1], landmarks[:, 2]
    ok = (vis >= MIN_VISIBILITY) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    if not ok.any():
        return None
    xs, ys = list(x[ok]), list(y[ok])
    if ok[[_NOSE, _LEFT_EYE, _RIGHT_EYE, _MOUTH_LEFT, _MOUTH_RIGHT]].all():
        point = landmarks[:, :2]
        ears = np.linalg.norm(point[_LEFT_EAR] - point[_RIGHT_EAR]) if ok[[_LEFT_EAR, _RIGHT_EAR]].all() else 0.0
        eyes_to_mouth = np.linalg.norm((point[_LEFT_EYE] + point[_RIGHT_EYE]) / 2
                                       - (point[_MOUTH_LEFT] + point[_MOUTH_RIGHT]) / 2)
        head = max(ears, 2.0 * eyes_to_mouth)
        nose_x, nose_y = point[_NOSE]
        xs += [max(nose_x - 0.6 * head, 0.0), min(nose_x + 0.6 * head, width - 1.0)]
        ys += [max(nose_y - 1.1 * head, 0.0)]
    return min(xs), min(ys), max(xs), max(ys)


def square_box(extent, width, height, margin=0.1, min_margin=0.02, pad_tolerance=0.03):
    """Fixed square crop box around a person extent (see the module docstring, step 3).

    Args:
        extent: (x0, y0, x1, y1) person extent in source pixels, inside the frame.
        width, height: frame size in pixels.
        margin: wanted margin on each side, as a fraction of the extent's larger side.
        min_margin: margin kept (padding the frame if needed) when the wanted one does not fit.
        pad_tolerance: when the needed side exceeds the frame's short side by at most this fraction, the short side
            is used instead (the extent loses a sliver at the frame edges instead of getting a thin padded border).
    Returns:
        ``CropBox`` containing the extent (up to ``pad_tolerance``).
    """
    x0, y0, x1, y1 = (float(v) for v in extent)
    longest = max(x1 - x0, y1 - y0, 1.0)
    keep = min_margin * longest
    need_w = min(x1 + keep, width - 1.0) - max(x0 - keep, 0.0) + 1
    need_h = min(y1 + keep, height - 1.0) - max(y0 - keep, 0.0) + 1
    wanted = longest * (1 + 2 * margin)
    short = min(width, height)
    side = int(math.ceil(max(need_w, need_h, min(wanted, short))))
    if short < side <= short * (1 + pad_tolerance):
        side = short  # trim a sliver of the extent rather than pad a thin black border

    def place(low, high, size):
        if side >= size:
            return (size - side) // 2
        return int(min(max(round((low + high) / 2 - side / 2), 0), size - side))
    return CropBox(place(x0, x1, width), place(y0, y1, height), side)


def find_person(frames, margin=0.1, min_margin=0.02, min_person_fraction=0.2):
    """Detect the person over a clip and choose its fixed crop box.

    Args:
        frames: sequence (or iterable) of (H, W, 3) uint8 RGB frames of one clip.
        margin, min_margin: see ``square_box``.
        min_person_fraction: minimum fraction of frames with a detected person.
    Returns:
        ``PersonTrack`` (box, landmarks, extent, frame size).
    Raises:
        NoPersonError: no person in at least ``min_person_fraction`` of the frames (or no frame at all).
    """
    size = []

    def remember_size(stream):
        for frame in stream:
            if not size:
                size.append((frame.shape[1], frame.shape[0]))
            yield frame
    landmarks = detect_pose(remember_size(frames))
    if not size:
        raise NoPersonError("no frame to look for a person in")
    width, height = size[0]
    extents = [e for e in (_frame_extent(lm, width, height) for lm in landmarks if not np.isnan(lm[0, 0]))
               if e is not None]
    fraction = len(extents) / len(landmarks)
    if fraction < min_person_fraction:
        raise NoPersonError(f"a person was found in {len(extents)} of {len(landmarks)} frames ({fraction:.0%}, "
                            f"need {min_person_fraction:.0%}); the clip seems to show no person")
    extents = np.array(extents)
    extent = np.array([extents[:, 0].min(), extents[:, 1].min(), extents[:, 2].max(), extents[:, 3].max()])
    return PersonTrack(square_box(extent, width, height, margin, min_margin), landmarks, extent, (width, height))


def person_crop_box(source, margin=0.1, max_frames=None, **kwargs):
    """Fixed person-centred square crop box of a clip (the codec's entry point).

    Args:
        source: a video path (str / Path; read with PyAV) or a sequence of (H, W, 3) uint8 RGB frames.
        margin: see ``square_box``. max_frames: look only at the first frames (None: all).
        kwargs: ``min_margin``, ``min_person_fraction`` (see ``find_person``).
    Returns:
        ``CropBox`` in source pixels; crop each frame with ``apply_crop(frame, box, size)``.
    Raises:
        NoPersonError: no person found; video_io.VideoReadError: unreadable video.
    """
    if isinstance(source, (str, Path)):
        from video_io import iter_frames
        frames = (frame for _, frame in iter_frames(source, range(max_frames) if max_frames else None))
    else:
        frames = source[:max_frames] if max_frames else source
    return find_person(frames, margin=margin, **kwargs).box


def apply_crop(frame, box, size):
    """Crop a frame to ``box`` (padding with black outside the frame) and resize it to ``size`` x ``size``.

    Args:
        frame: (H, W, 3) uint8 RGB. box: ``CropBox`` in the frame's pixels. size: output side in pixels.
    Returns:
        (size, size, 3) uint8 RGB; area interpolation when shrinking, bicubic when enlarging.
    """
    height, width = frame.shape[:2]
    x0, y0, side = box.x0, box.y0, box.side
    if x0 >= 0 and y0 >= 0 and x0 + side <= width and y0 + side <= height:
        crop = frame[y0:y0 + side, x0:x0 + side]
    else:
        crop = np.zeros((side, side) + frame.shape[2:], frame.dtype)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
        if sx1 > sx0 and sy1 > sy0:
            crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    if side == size:
        return np.ascontiguousarray(crop)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)
