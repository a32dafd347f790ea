"""Motion fidelity: does the decoded person follow the original's head, mouth and body motion?

Pixel metrics (PSNR, MS-SSIM, VMAF) barely separate a codec that transmits motion from the decoded key frame held
still (the *frozen key frame*, the no-motion baseline). This metric looks at the motion itself: the MediaPipe
Holistic teacher (:func:`tools.extract_vertices.holistic_landmarks`: ``mediapipe==0.10.14``, model complexity 1,
video mode, landmark smoothing on, a fresh ``Holistic`` per call) is run on the original frames and, separately
and afresh, on the decoded frames, and the two landmark tracks are compared.

Landmarks (543, the layout of ``tools/extract_vertices.py``): 0..32 pose, 33..500 face mesh (468), 501..521 left
hand, 522..542 right hand. A landmark is *found* in a frame when the teacher returned it inside the frame
(confidence > 0); a pose landmark counts only with visibility >= ``POSE_MIN_VISIBILITY`` (0.5). Pixel
coordinates at the evaluated frame size H x W: ``px = (x + 1) / 2 * (W - 1)`` (as ``modules.util.to_pixels``).

Per group (``face`` = the 468 face-mesh points, ``pose`` = the 33 pose points, ``hands`` = both hands, each
compared with the same hand of the person), over every (frame, landmark) pair found in *both* videos:

- ``<group>_error_px``: mean Euclidean landmark distance in pixels at H x W;
- ``<group>_error_norm``: mean of that distance divided by a size of the person in the *original* frame:
  face: the inter-ocular distance (outer eye corners, face-mesh 33 and 263; the normalised mean error "NME" of
  face alignment); pose and hands: the torso length (mid-shoulders, pose 11/12, to mid-hips, pose 23/24), only
  in frames whose original shows both shoulders and both hips (other frames count in ``_px`` only);
- ``<group>_pck``: fraction of those pairs within ``PCK_THRESHOLD`` (0.1) of the same normaliser, in [0, 1];
- ``<group>_landmarks``: the number of pairs counted.
The values are None when no pair was counted (e.g. ``hands`` on a talking head).

Time series, over the frames where the face is found in both videos, Pearson correlation in [-1, 1] between the
original's and the decoded series (1 = follows exactly, ~0 = no relation):

- ``mouth_corr``: mouth opening = distance between the inner-lip midpoints (face-mesh 13 and 14) divided by the
  same frame's inter-ocular distance (33-263), so that zooming does not count as mouth motion;
- ``yaw_corr``, ``pitch_corr``: head-rotation proxies from the nose tip (face-mesh 1) and the face outline at the
  cheeks (face-mesh 234 and 454, the right and left edge of the face): with ``a`` = point 234,
  ``b`` = point 454, ``w = |b - a|``, ``u = (b - a) / w`` and ``v`` = ``u`` turned by +90 degrees (down the face),
  ``yaw = 2 * dot(nose - a, u) / w - 1`` (0 when the nose sits midway between the cheek edges, towards +-1 as the
  head turns) and ``pitch = dot(nose - (a + b) / 2, v) / w`` (the nose tip below / above the cheek line, grows
  as the head nods down). Both are dimensionless and roll-invariant; they are monotonic in the head angle for
  moderate angles, not calibrated degrees, which a correlation does not need.
A series whose standard deviation is below ``CONSTANT_STD`` (1e-6, i.e. constant: the frozen key frame) has an
undefined Pearson correlation: it is reported as 0 when the *decoded* series is the constant one (or fewer than
3 common frames exist), and as None when the *original* does not move or shows a face in fewer than 3 frames
(nothing to follow). ``mouth_std_*``,
``yaw_std_*``, ``pitch_std_*`` give the standard deviations of the series (original / decoded, same units).

Still frames: a decoded frame that is byte-identical to the previous decoded frame gets that frame's landmarks
(the teacher runs on the distinct consecutive frames only). In video mode the teacher's tracker otherwise settles
and oscillates on a still picture (measured on the frozen key frame of the public test clips: series std up to
0.005 mouth, 0.015 yaw, 0.007 pitch with the face found throughout, larger where the face is lost and found
again), which is not motion and would give the frozen key frame chance correlations up to about +-0.5. The same
jitter is the noise floor for decoded videos that are nearly but not exactly still, and for small faces (an
inter-ocular distance of ~12 px, TED clips at 128x128, puts the mouth opening near it): compare the ``*_std_*``
values with those figures before reading much into a correlation.

Counts (frames are never silently dropped): ``frames``, ``frames_no_face_original``, ``frames_no_face_decoded``
(frames where the teacher found no face), ``frames_no_pose_original``, ``frames_no_pose_decoded`` (no person),
``hands_original``, ``hands_decoded`` (number of (frame, hand) detections: a hand the original shows and the
decoded loses lowers the second), ``frames_no_torso_original`` (frames without a torso normaliser).

Speed, for context: ``face_speed_original_px_s``, ``face_speed_decoded_px_s``: mean face-landmark speed in pixels
per second (consecutive frames with a face, times ``fps``); the frozen key frame gives 0.

The metric is deterministic (the teacher is, on the CPU, for the same frames). Cost: one teacher pass per video,
about 15-20 frames/s at 128-256 px on one shared core (the original's pass can be reused: ``original_landmarks``).
"""
from dataclasses import dataclass

import numpy as np

from modules.util import to_pixels
from tools.extract_vertices import FACE_SLICE, LEFT_HAND_SLICE, NUM_HOLISTIC, POSE_SLICE, RIGHT_HAND_SLICE

PCK_THRESHOLD = 0.1
POSE_MIN_VISIBILITY = 0.5
CONSTANT_STD = 1e-6
MIN_SERIES = 3

# face-mesh indices (MediaPipe FaceMesh order) and pose indices (MediaPipe Pose order)
NOSE_TIP, UPPER_LIP, LOWER_LIP = 1, 13, 14
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
SHOULDERS, HIPS = (11, 12), (23, 24)

GROUPS = ('face', 'pose', 'hands')
#: every key of motion_fidelity()'s dict, in report order
FIELDS = tuple(f'{g}_{k}' for g in GROUPS for k in ('error_px', 'error_norm', 'pck', 'landmarks')) + (
    'mouth_corr', 'yaw_corr', 'pitch_corr', 'mouth_std_original', 'mouth_std_decoded', 'yaw_std_original',
    'yaw_std_decoded', 'pitch_std_original', 'pitch_std_decoded', 'frames', 'frames_no_face_original',
    'frames_no_face_decoded',
    'frames_no_pose_original', 'frames_no_pose_decoded', 'hands_original', 'hands_decoded',
    'frames_no_torso_original', 'face_speed_original_px_s', 'face_speed_decoded_px_s')


@dataclass
class Landmarks:
    """Teacher landmarks of one video.

    Attributes:
        points: (T, 543, 2) float64 pixel coordinates at the frame size (x right, y down).
        found: (T, 543) bool, the landmark was found (pose: visibility >= POSE_MIN_VISIBILITY).
        height, width: frame size in pixels.
    """
    points: np.ndarray
    found: np.ndarray
    height: int
    width: int

    def save(self, path):
        """Write to an ``.npz`` file (``path`` may be an open binary file)."""
        np.savez_compressed(path, points=self.points, found=self.found, size=np.array([self.height, self.width]))

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save`."""
        with np.load(path) as data:
            height, width = (int(v) for v in data['size'])
            return cls(data['points'], data['found'], height, width)


def teacher_landmarks(frames):
    """Run the Holistic teacher (a fresh instance, video mode) on one video; a frame identical to the previous one
    gets that frame's landmarks (module docstring).

    Args:
        frames: (T, H, W, 3) uint8 RGB, in display order.
    Returns:
        Landmarks.
    Raises:
        ValueError: not uint8 (T, H, W, 3).
    """
    from tools.extract_vertices import holistic_landmarks
    frames = _check(frames, 'frames')
    height, width = frames.shape[1:3]
    flat = frames.reshape(len(frames), -1)
    new = np.ones(len(frames), bool)
    new[1:] = (flat[1:] != flat[:-1]).any(1)           # differs from the previous frame
    vertices, confidence = holistic_landmarks(frames[new])
    source = np.cumsum(new) - 1                         # frame t -> its last distinct frame
    vertices, confidence = vertices[source], confidence[source]
    found = confidence > 0
    found[:, POSE_SLICE] = confidence[:, POSE_SLICE] >= POSE_MIN_VISIBILITY
    return Landmarks(to_pixels(vertices, height, width), found, height, width)


def motion_fidelity(original, decoded, fps, original_landmarks=None):
    """Motion fidelity of decoded frames against the original (definitions: module docstring).

    Args:
        original: (T, H, W, 3) uint8 RGB original frames.
        decoded: (T, H, W, 3) uint8 RGB decoded frames, same shape.
        fps: frame rate (> 0), for the speeds only.
        original_landmarks: the original's Landmarks from an earlier :func:`teacher_landmarks` (reused, e.g. for
            several operating points of one sequence); None: computed here.
    Returns:
        dict with every key of FIELDS: errors in px / normalised units, PCK in [0, 1], correlations in [-1, 1]
        (None where undefined), counts (int), speeds in px/s.
    Raises:
        ValueError: bad or mismatched frame arrays, fps <= 0, landmarks of another shape.
    """
    original, decoded = _check(original, 'original'), _check(decoded, 'decoded')
    if original.shape != decoded.shape:
        raise ValueError(f'original {original.shape} and decoded {decoded.shape} differ in shape')
    if original_landmarks is None:
        original_landmarks = teacher_landmarks(original)
    if (len(original_landmarks.points), original_landmarks.height, original_landmarks.width) != \
            (len(original), *original.shape[1:3]):
        raise ValueError('original_landmarks were computed on frames of another length or size')
    return compare_landmarks(original_landmarks, teacher_landmarks(decoded), fps)


def compare_landmarks(original, decoded, fps):
    """The metric from two landmark tracks (no teacher run): see :func:`motion_fidelity`.

    Args:
        original, decoded: Landmarks of the same length and frame size. fps: frame rate (> 0).
    Returns:
        dict (FIELDS).
    """
    if original.points.shape != decoded.points.shape or original.points.shape[1:] != (NUM_HOLISTIC, 2):
        raise ValueError(f'landmark tracks differ in shape: {original.points.shape} vs {decoded.points.shape}')
    if (original.height, original.width) != (decoded.height, decoded.width):
        raise ValueError('landmark tracks come from frames of different sizes')
    if not fps or fps <= 0:
        raise ValueError(f'fps must be positive, got {fps!r}')
    result = dict(frames=len(original.points))
    iod = _distance(original, FACE_SLICE.start + EYE_OUTER_RIGHT, FACE_SLICE.start + EYE_OUTER_LEFT)
    torso = _torso(original)
    hands = np.r_[LEFT_HAND_SLICE, RIGHT_HAND_SLICE]
    for group, index, scale in (('face', np.r_[FACE_SLICE], iod), ('pose', np.r_[POSE_SLICE], torso),
                                ('hands', hands, torso)):
        result.update(_group_error(group, original, decoded, index, scale))
    for name, series in (('mouth', mouth_opening), ('yaw', _yaw), ('pitch', _pitch)):
        x, y = series(original), series(decoded)
        result[f'{name}_corr'] = series_correlation(x, y)
        result[f'{name}_std_original'], result[f'{name}_std_decoded'] = _std(x), _std(y)
    face_o, face_d = _face_found(original), _face_found(decoded)
    result.update(
        frames_no_face_original=int((~face_o).sum()), frames_no_face_decoded=int((~face_d).sum()),
        frames_no_pose_original=int((~original.found[:, POSE_SLICE].any(1)).sum()),
        frames_no_pose_decoded=int((~decoded.found[:, POSE_SLICE].any(1)).sum()),
        hands_original=_hand_count(original), hands_decoded=_hand_count(decoded),
        frames_no_torso_original=int(np.isnan(torso).sum()),
        face_speed_original_px_s=_face_speed(original, fps), face_speed_decoded_px_s=_face_speed(decoded, fps))
    return {key: result[key] for key in FIELDS}


def amplitude_ratio(std_decoded, std_original):
    """How much a decoded series moves relative to the original: ``std_decoded / std_original`` of e.g.
    ``mouth_std_decoded`` and ``mouth_std_original`` (1 = opens and closes as much, 0 = still, the frozen key frame).
    A correlation can be high while the decoded mouth barely opens; this says how far it does.

    Returns: float >= 0, or None where either is None or the original does not move (std < CONSTANT_STD).
    """
    if std_decoded is None or std_original is None or std_original < CONSTANT_STD:
        return None
    return float(std_decoded) / float(std_original)


def _check(frames, name):
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f'{name} frames must be uint8 (T, H, W, 3) RGB with T >= 1, got {frames.dtype} '
                         f'{frames.shape}')
    return frames


def _distance(marks, i, j):
    """(T,) distance between landmarks i and j (NaN where either is missing)."""
    d = np.linalg.norm(marks.points[:, i] - marks.points[:, j], axis=-1)
    return np.where(marks.found[:, i] & marks.found[:, j], d, np.nan)


def _torso(marks):
    """(T,) mid-shoulder to mid-hip distance in px (NaN where a shoulder or hip is not visible)."""
    index = list(SHOULDERS + HIPS)
    ok = marks.found[:, index].all(1)
    shoulders = marks.points[:, list(SHOULDERS)].mean(1)
    hips = marks.points[:, list(HIPS)].mean(1)
    return np.where(ok, np.linalg.norm(shoulders - hips, axis=-1), np.nan)


def _group_error(group, original, decoded, index, scale):
    both = original.found[:, index] & decoded.found[:, index]                        # (T, n)
    error = np.linalg.norm(original.points[:, index] - decoded.points[:, index], axis=-1)
    out = {f'{group}_error_px': None, f'{group}_error_norm': None, f'{group}_pck': None,
           f'{group}_landmarks': int(both.sum())}
    if both.any():
        out[f'{group}_error_px'] = float(error[both].mean())
        scaled = both & (np.isfinite(scale) & (scale > 0))[:, None]
        if scaled.any():
            normalised = (error / np.where(scale > 0, scale, np.nan)[:, None])[scaled]
            out[f'{group}_error_norm'] = float(normalised.mean())
            out[f'{group}_pck'] = float((normalised <= PCK_THRESHOLD).mean())
    return out


def _face_found(marks):
    return marks.found[:, FACE_SLICE].any(1)


def _face(marks, i):
    return marks.points[:, FACE_SLICE.start + i]


def _face_ok(marks, *indices):
    return marks.found[:, [FACE_SLICE.start + i for i in indices]].all(1)


def mouth_opening(marks):
    """The mouth-opening series of a Landmarks track: (T,) inner-lip distance (face-mesh 13-14) / inter-ocular
    distance (33-263), NaN in frames without a face."""
    opening = np.linalg.norm(_face(marks, UPPER_LIP) - _face(marks, LOWER_LIP), axis=-1)
    iod = np.linalg.norm(_face(marks, EYE_OUTER_RIGHT) - _face(marks, EYE_OUTER_LEFT), axis=-1)
    ok = _face_ok(marks, UPPER_LIP, LOWER_LIP, EYE_OUTER_RIGHT, EYE_OUTER_LEFT) & (iod > 0)
    return np.where(ok, opening / np.where(ok, iod, 1.0), np.nan)


def _cheek_frame(marks):
    a, b = _face(marks, CHEEK_RIGHT), _face(marks, CHEEK_LEFT)
    width = np.linalg.norm(b - a, axis=-1)
    ok = _face_ok(marks, CHEEK_RIGHT, CHEEK_LEFT, NOSE_TIP) & (width > 0)
    width = np.where(ok, width, 1.0)
    u = (b - a) / width[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=-1)      # u turned by +90 degrees in image axes (y down): down the face
    return a, b, width, u, v, ok


def _yaw(marks):
    """(T,) yaw proxy 2 * t - 1, t = the nose tip's position between the cheek edges (NaN without a face)."""
    a, _, width, u, _, ok = _cheek_frame(marks)
    t = ((_face(marks, NOSE_TIP) - a) * u).sum(-1) / width
    return np.where(ok, 2 * t - 1, np.nan)


def _pitch(marks):
    """(T,) pitch proxy: the nose tip's offset below the cheek line, in face widths (NaN without a face)."""
    a, b, width, _, v, ok = _cheek_frame(marks)
    offset = ((_face(marks, NOSE_TIP) - (a + b) / 2) * v).sum(-1) / width
    return np.where(ok, offset, np.nan)


def series_correlation(original, decoded):
    """Pearson correlation in [-1, 1] of two (T,) series over the frames where both are defined (NaN elsewhere):
    None when the original has fewer than MIN_SERIES defined values or does not move, 0.0 when the decoded series
    is constant or fewer than MIN_SERIES frames are common (rules: module docstring)."""
    if np.count_nonzero(np.isfinite(original)) < MIN_SERIES or np.nanstd(original) < CONSTANT_STD:
        return None
    both = np.isfinite(original) & np.isfinite(decoded)
    if both.sum() < MIN_SERIES:
        return 0.0
    x, y = original[both], decoded[both]
    if x.std() < CONSTANT_STD or y.std() < CONSTANT_STD:
        return 0.0
    return float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))


def _std(series):
    series = series[np.isfinite(series)]
    return float(series.std()) if len(series) else None


def _hand_count(marks):
    return int(marks.found[:, LEFT_HAND_SLICE].any(1).sum() + marks.found[:, RIGHT_HAND_SLICE].any(1).sum())


def _face_speed(marks, fps):
    """Mean face-landmark displacement between consecutive frames (both with the landmark) times fps, px/s."""
    found = marks.found[:, FACE_SLICE]
    both = found[1:] & found[:-1]
    if not both.any():
        return None
    step = np.linalg.norm(np.diff(marks.points[:, FACE_SLICE], axis=0), axis=-1)
    return float(step[both].mean() * float(fps))
