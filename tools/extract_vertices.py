"""Per-frame vertex teacher labels for prepared clips: ``ROOT/vertices/<clip stem>.npz``.

Label file (read by ``frames_dataset.FramesDataset``):

- ``vertices`` (T, N, 2) float32: x, y in normalized image coordinates of the clip, ``x = 2 * px / (W - 1) - 1``
  (px in pixels, x right, y down; same for y with H), clipped to [-1, 1];
- ``confidence`` (T, N) float32 in [0, 1]: 0 where the teacher found nothing or the point lies outside the frame
  (the vertex loss ignores those);
- ``teacher`` (str), ``layout`` (str, the landmark order), ``flip_index`` (N,) int64 when known: the permutation
  under a horizontal flip (after flipping a frame, landmark i sits where landmark ``flip_index[i]`` was, mirrored).

Teachers:

``holistic`` (default, offline): MediaPipe Holistic (``mediapipe==0.10.14``, model_complexity 1, video mode, no
iris refinement) on every frame. N = 543 in this fixed order (``HOLISTIC_LAYOUT``):

- 0..32: the 33 pose landmarks (``tools.crop.POSE_LANDMARK_NAMES``); confidence = the landmark's visibility;
- 33..500: the 468 face-mesh landmarks in MediaPipe FaceMesh order; confidence 1 when a face is detected;
- 501..521: the 21 landmarks of the person's left hand (MediaPipe hand order: wrist, thumb 1-4, index 5-8, ...);
- 522..542: the 21 landmarks of the person's right hand; confidence 1 when that hand is detected.

Missing parts get confidence 0 (and coordinates 0). ``flip_index`` swaps the pose left/right pairs, the two hand
blocks, and the face-mesh mirror pairs ``FACE_MESH_MIRROR``. That table was derived from real footage with
``--derive-face-flip`` (``derive_face_mesh_mirror``): FaceMesh on frames and on their mirror images, the mirrored
landmarks matched to the original ones by an optimal assignment (Hungarian, mean distance over the frames); the
result is an involution whose fixed points are the 28 landmarks on the face's midline (forehead, nose, lips, chin),
and it pairs e.g. the eye corners 33/263 and 133/362 and the mouth corners 61/291. Derived with:
``python -m tools.extract_vertices --derive-face-flip ../shared/data/clips/head{02,04,05,08,14,15}_*.mp4``
(every 10th frame).

``osx`` (import): SMPL-X vertices projected to 2D by OSX (N = 10475, the paper's vertex-head target), produced
elsewhere on the *prepared* clips (same frames, same size), in pixels of the clip (x right, y down). Accepted, in
``--osx-dir``:

- per clip: ``<clip stem>.npy`` (T, 10475, 2), or ``<clip stem>.npz`` with ``vertices`` (T, 10475, 2) and
  optionally ``valid`` (T,) bool (frames where OSX found the person) and ``flip_index`` (10475,) int;
- per frame: a folder ``<clip stem>/`` with ``<frame index>.npy`` (10475, 2) (index as an integer, any zero
  padding, e.g. ``000012.npy``); missing frames get confidence 0.

``--osx-flip-index FILE.npy`` supplies the SMPL-X left/right vertex permutation (it needs the SMPL-X model, which
is not shipped here); without it the label file has no ``flip_index`` and the data set does not flip those items.

``--overlay`` also writes ``ROOT/vertices/overlay/<clip stem>.mp4`` (labels drawn on every frame) and a PNG of the
middle frame.

Example:
    python -m tools.extract_vertices --root data/humans256 --overlay
"""
import argparse
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tools.crop import POSE_LANDMARK_NAMES
from video_io import VideoReadError, atomic_path, iter_frames, probe, write_video

NUM_POSE, NUM_FACE, NUM_HAND = 33, 468, 21
POSE_SLICE = slice(0, NUM_POSE)
FACE_SLICE = slice(NUM_POSE, NUM_POSE + NUM_FACE)
LEFT_HAND_SLICE = slice(NUM_POSE + NUM_FACE, NUM_POSE + NUM_FACE + NUM_HAND)
RIGHT_HAND_SLICE = slice(NUM_POSE + NUM_FACE + NUM_HAND, NUM_POSE + NUM_FACE + 2 * NUM_HAND)
NUM_HOLISTIC = NUM_POSE + NUM_FACE + 2 * NUM_HAND  # 543
HOLISTIC_LAYOUT = ('mediapipe_holistic_543: 0-32 pose (MediaPipe Pose order), 33-500 face mesh (468, MediaPipe '
                   'FaceMesh order), 501-521 left hand, 522-542 right hand (21 each, MediaPipe hand order); '
                   'left/right = the person\'s')
NUM_SMPLX = 10475
OSX_LAYOUT = 'smplx_10475: SMPL-X vertices in SMPL-X order, projected to 2D by OSX'
VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm')

# Face-mesh mirror permutation (468), from ``derive_face_mesh_mirror`` (see the module docstring).
FACE_MESH_MIRROR = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 250, 251, 252, 253, 254, 255, 256,
    257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278,
    279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300,
    301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322,
    323, 94, 324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341, 342, 343,
    344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365,
    366, 367, 368, 369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385,
    386, 387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400, 401, 402, 403, 404,
    405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199, 200, 421, 422,
    423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444,
    445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464, 465, 466,
    467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72,
    73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 95, 96, 97, 98, 99, 100,
    101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122,
    123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
    145, 146, 147, 148, 149, 150, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170,
    171, 172, 173, 174, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193,
    194, 196, 198, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241,
    242, 243, 244, 245, 246, 247)


def _pose_mirror():
    names = list(POSE_LANDMARK_NAMES)
    swap = {'left': 'right', 'right': 'left'}
    return np.array([names.index(re.sub(r'^(left|right)', lambda m: swap[m.group(1)], n)) for n in names])


def holistic_flip_index():
    """(543,) int64 permutation of the holistic layout under a horizontal flip (pose pairs, face-mesh mirror pairs,
    left <-> right hand blocks)."""
    index = np.arange(NUM_HOLISTIC)
    index[POSE_SLICE] = _pose_mirror()
    index[FACE_SLICE] = NUM_POSE + np.asarray(FACE_MESH_MIRROR)
    index[LEFT_HAND_SLICE] = np.arange(NUM_HAND) + RIGHT_HAND_SLICE.start
    index[RIGHT_HAND_SLICE] = np.arange(NUM_HAND) + LEFT_HAND_SLICE.start
    return index.astype(np.int64)


def to_normalized(points, width, height):
    """Pixel coordinates (..., 2) -> normalized [-1, 1] coordinates ``2 * p / (size - 1) - 1`` (unclipped)."""
    scale = np.array([2.0 / (width - 1), 2.0 / (height - 1)], np.float32)
    return np.asarray(points, np.float32) * scale - 1.0


def finalize(vertices, confidence, found):
    """Label arrays from raw normalized points: confidence 0 for points not found, not finite or outside [-1, 1]
    (outside the frame); coordinates clipped to [-1, 1], 0 for points not found.

    Args: vertices (T, N, 2), confidence (T, N), found (T, N) bool. Returns float32 (T, N, 2), (T, N)."""
    vertices = np.nan_to_num(np.asarray(vertices, np.float32), nan=np.inf)
    confidence = np.clip(np.asarray(confidence, np.float32), 0.0, 1.0)
    inside = np.asarray(found, bool) & (np.abs(vertices) <= 1.0).all(-1)
    confidence = np.where(inside, confidence, 0.0).astype(np.float32)
    vertices = np.where(np.asarray(found, bool)[..., None], np.clip(vertices, -1.0, 1.0), 0.0).astype(np.float32)
    return vertices, confidence


def holistic_landmarks(frames):
    """MediaPipe Holistic on the frames of one clip (video mode).

    Args:
        frames: iterable of (H, W, 3) uint8 RGB frames, in order.
    Returns:
        vertices (T, 543, 2) float32 in [-1, 1], confidence (T, 543) float32 in [0, 1] (layout: module docstring).
    """
    import mediapipe as mp
    vertices, confidence, found = [], [], []
    with mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                        refine_face_landmarks=False, min_detection_confidence=0.5,
                                        min_tracking_confidence=0.5) as holistic:
        for frame in frames:
            height, width = frame.shape[:2]
            result = holistic.process(np.ascontiguousarray(frame))
            points = np.zeros((NUM_HOLISTIC, 2), np.float32)
            conf = np.zeros(NUM_HOLISTIC, np.float32)
            present = np.zeros(NUM_HOLISTIC, bool)
            parts = ((POSE_SLICE, result.pose_landmarks), (FACE_SLICE, result.face_landmarks),
                     (LEFT_HAND_SLICE, result.left_hand_landmarks), (RIGHT_HAND_SLICE, result.right_hand_landmarks))
            for part, detected in parts:
                if detected is None:
                    continue
                marks = detected.landmark
                points[part] = [(m.x * width, m.y * height) for m in marks]
                conf[part] = [m.visibility for m in marks] if part is POSE_SLICE else 1.0
                present[part] = True
            vertices.append(to_normalized(points, width, height))
            confidence.append(conf)
            found.append(present)
    if not vertices:
        return np.zeros((0, NUM_HOLISTIC, 2), np.float32), np.zeros((0, NUM_HOLISTIC), np.float32)
    return finalize(np.stack(vertices), np.stack(confidence), np.stack(found))


def derive_face_mesh_mirror(frames):
    """Face-mesh mirror permutation from real frames (see the module docstring).

    Args:
        frames: iterable of (H, W, 3) uint8 RGB frames showing one roughly frontal face each.
    Returns:
        (468,) int64 permutation P: in a mirrored image, face landmark i lies where landmark P[i] lay (mirrored).
    Raises:
        ValueError: no face found, or the assignment is not an involution (frames too few / not frontal).
    """
    import mediapipe as mp
    from scipy.optimize import linear_sum_assignment
    cost, used = np.zeros((NUM_FACE, NUM_FACE)), 0
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        for frame in frames:
            original = mesh.process(np.ascontiguousarray(frame)).multi_face_landmarks
            mirrored = mesh.process(np.ascontiguousarray(frame[:, ::-1])).multi_face_landmarks
            if not original or not mirrored:
                continue
            a = np.array([(m.x, m.y) for m in original[0].landmark])
            b = np.array([(1.0 - m.x, m.y) for m in mirrored[0].landmark])
            scale = np.ptp(a, axis=0).max()
            cost += np.linalg.norm(b[:, None] - a[None], axis=-1) / scale
            used += 1
    if not used:
        raise ValueError('no face found in the frames: use frames with a clear, roughly frontal face')
    rows, cols = linear_sum_assignment(cost)
    mirror = cols[np.argsort(rows)].astype(np.int64)
    if not np.array_equal(mirror[mirror], np.arange(NUM_FACE)):
        raise ValueError(f'the face-mesh assignment over {used} frames is not an involution; use more frontal frames')
    return mirror


def _read_clip(path):
    frames = [frame for _, frame in iter_frames(path)]
    return np.stack(frames)


def osx_labels(osx_dir, stem, num_frames, width, height):
    """Load OSX / SMPL-X projected vertices of one clip (formats: module docstring).

    Returns:
        vertices (T, 10475, 2) float32 in [-1, 1], confidence (T, 10475) float32, flip_index (10475,) or None.
    Raises:
        FileNotFoundError: no OSX output for the clip. ValueError: wrong shapes.
    """
    osx_dir = Path(osx_dir)
    flip = None
    if (osx_dir / f'{stem}.npz').is_file() or (osx_dir / f'{stem}.npy').is_file():
        if (osx_dir / f'{stem}.npz').is_file():
            with np.load(osx_dir / f'{stem}.npz') as data:
                points = np.asarray(data['vertices'], np.float32)
                valid = np.asarray(data['valid'], bool) if 'valid' in data else np.ones(len(points), bool)
                flip = np.asarray(data['flip_index'], np.int64) if 'flip_index' in data else None
        else:
            points = np.load(osx_dir / f'{stem}.npy').astype(np.float32)
            valid = np.ones(len(points), bool)
        if points.ndim != 3 or points.shape[1:] != (NUM_SMPLX, 2) or len(points) != num_frames:
            raise ValueError(f"OSX vertices of '{stem}' have shape {points.shape}; expected ({num_frames}, "
                             f"{NUM_SMPLX}, 2) (one row per frame of the prepared clip, pixels)")
    elif (osx_dir / stem).is_dir():
        points = np.zeros((num_frames, NUM_SMPLX, 2), np.float32)
        valid = np.zeros(num_frames, bool)
        for path in (osx_dir / stem).glob('*.npy'):
            if not path.stem.isdigit() or int(path.stem) >= num_frames:
                raise ValueError(f"OSX frame file '{path}': name must be a frame index below {num_frames}")
            frame_points = np.load(path)
            if frame_points.shape != (NUM_SMPLX, 2):
                raise ValueError(f"OSX frame file '{path}' has shape {frame_points.shape}; expected ({NUM_SMPLX}, 2)")
            points[int(path.stem)], valid[int(path.stem)] = frame_points, True
    else:
        raise FileNotFoundError(f"no OSX output for clip '{stem}' in '{osx_dir}' (expected {stem}.npy, {stem}.npz "
                                f"or a folder {stem}/ of per-frame .npy files)")
    found = np.repeat(valid[:, None], NUM_SMPLX, axis=1)
    vertices, confidence = finalize(to_normalized(points, width, height), found.astype(np.float32), found)
    return vertices, confidence, flip


def draw_labels(frame, vertices, confidence, radius=1):
    """Labels drawn on a copy of one frame: (H, W, 3) uint8, vertices (N, 2) in [-1, 1], confidence (N,).
    Holistic: pose red, face green, left hand blue, right hand yellow; other layouts: green."""
    height, width = frame.shape[:2]
    image = frame.copy()
    pixels = np.round((vertices + 1.0) / 2.0 * np.array([width - 1, height - 1])).astype(int)
    colours = np.tile(np.array([(0, 255, 0)]), (len(vertices), 1))
    if len(vertices) == NUM_HOLISTIC:
        colours[POSE_SLICE] = (255, 0, 0)
        colours[LEFT_HAND_SLICE] = (0, 128, 255)
        colours[RIGHT_HAND_SLICE] = (255, 255, 0)
    for (x, y), c, colour in zip(pixels, confidence, colours):
        if c > 0.5:
            cv2.circle(image, (int(x), int(y)), radius, tuple(int(v) for v in colour), -1)
    return image


def write_labels(path, vertices, confidence, teacher, layout, flip_index=None):
    """Write a label file atomically (arrays: module docstring)."""
    arrays = dict(vertices=vertices.astype(np.float32), confidence=confidence.astype(np.float32),
                  teacher=np.array(teacher), layout=np.array(layout))
    if flip_index is not None:
        arrays['flip_index'] = np.asarray(flip_index, np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as handle:
            np.savez_compressed(handle, **arrays)


def label_clip(path, out_dir, teacher='holistic', osx_dir=None, osx_flip=None, overlay=False):
    """Label one prepared clip and write ``out_dir/<stem>.npz`` (and the overlay). Returns the number of frames.

    Raises:
        VideoReadError: unreadable clip. FileNotFoundError / ValueError: missing or malformed OSX output.
    """
    path = Path(path)
    frames = _read_clip(path)
    height, width = frames.shape[1:3]
    if teacher == 'holistic':
        vertices, confidence = holistic_landmarks(frames)
        flip, layout = holistic_flip_index(), HOLISTIC_LAYOUT
    else:
        vertices, confidence, flip = osx_labels(osx_dir, path.stem, len(frames), width, height)
        flip = osx_flip if osx_flip is not None else flip
        layout = OSX_LAYOUT
    write_labels(Path(out_dir) / f'{path.stem}.npz', vertices, confidence, teacher, layout, flip)
    if overlay:
        drawn = [draw_labels(f, v, c) for f, v, c in zip(frames, vertices, confidence)]
        write_video(Path(out_dir) / 'overlay' / f'{path.stem}.mp4', drawn, probe(path).fps, crf=12)
        with atomic_path(Path(out_dir) / 'overlay' / f'{path.stem}.png') as tmp:
            middle = cv2.cvtColor(drawn[len(drawn) // 2], cv2.COLOR_RGB2BGR)
            tmp.write_bytes(cv2.imencode('.png', middle)[1].tobytes())
    return len(frames)


def _clips(root, splits):
    clips = []
    for split in splits:
        folder = Path(root) / split
        if folder.is_dir():
            clips += sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return clips


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', type=Path, help='prepared data set root (holds train/ and test/)')
    parser.add_argument('--splits', default='train,test', help='sub-folders of ROOT to label')
    parser.add_argument('--videos', type=Path, nargs='*', help='label these clips instead of ROOT/<splits>')
    parser.add_argument('--out-dir', type=Path, help='label folder (default ROOT/vertices)')
    parser.add_argument('--teacher', choices=('holistic', 'osx'), default='holistic')
    parser.add_argument('--osx-dir', type=Path, help='with --teacher osx: folder of OSX outputs')
    parser.add_argument('--osx-flip-index', type=Path, help='SMPL-X left/right vertex permutation (.npy, 10475)')
    parser.add_argument('--overlay', action='store_true', help='also write overlay MP4 + PNG per clip')
    parser.add_argument('--overwrite', action='store_true', help='relabel clips that already have labels')
    parser.add_argument('--derive-face-flip', type=Path, nargs='+', metavar='VIDEO',
                        help='print the face-mesh mirror table derived from these videos (frontal faces) and exit')
    args = parser.parse_args(argv)
    if args.derive_face_flip is None and args.root is None and not args.videos:
        parser.error('pass --root (a prepared data set) or --videos')
    if args.teacher == 'osx' and args.osx_dir is None:
        parser.error('--teacher osx needs --osx-dir (the OSX outputs)')
    return args


def main(argv=None):
    """Command line entry point (module docstring). Returns 0 when every clip was labelled, 1 otherwise."""
    args = parse_args(argv)
    if args.derive_face_flip:
        frames = (frame for video in args.derive_face_flip for index, frame in iter_frames(video) if index % 10 == 0)
        mirror = derive_face_mesh_mirror(frames)
        print('FACE_MESH_MIRROR = (' + ', '.join(str(int(v)) for v in mirror) + ')')
        return 0
    clips = [Path(p) for p in args.videos] if args.videos else _clips(args.root, args.splits.split(','))
    if not clips:
        raise SystemExit(f"error: no clip found in {args.root}/{{{args.splits}}}")
    out_dir = args.out_dir or (Path(args.root) / 'vertices' if args.root else Path(clips[0]).parent / 'vertices')
    osx_flip = np.load(args.osx_flip_index).astype(np.int64) if args.osx_flip_index else None
    started, frames, failed, skipped = time.time(), 0, [], 0
    for clip in tqdm(clips, desc=f'{args.teacher} labels', unit='clip'):
        target = out_dir / f'{clip.stem}.npz'
        if target.exists() and not args.overwrite:
            with np.load(target) as data:
                if str(data['teacher']) == args.teacher:
                    skipped += 1
                    continue
        try:
            frames += label_clip(clip, out_dir, args.teacher, args.osx_dir, osx_flip, args.overlay)
        except (VideoReadError, FileNotFoundError, ValueError) as error:
            failed.append(clip)
            tqdm.write(f'warning: {clip}: {error}; no labels written for it')
    print(f'{len(clips) - len(failed) - skipped} clips ({frames} frames) labelled in {time.time() - started:.1f} s, '
          f'{skipped} already labelled, {len(failed)} failed; labels in {out_dir}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
