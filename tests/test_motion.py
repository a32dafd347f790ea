"""evaluation/motion.py: motion fidelity with the Holistic teacher on the bundled real clips (identity, frozen key
frame, frames without a face, a full-body clip) and the formulas on synthetic landmark tracks."""
import numpy as np
import pytest

from evaluation.motion import (FIELDS, NUM_HOLISTIC, PCK_THRESHOLD, Landmarks, amplitude_ratio, compare_landmarks,
                               motion_fidelity, teacher_landmarks)
from tools.extract_vertices import FACE_SLICE
from video_io import read_frames

FRAMES = 40
NUM_FACE = FACE_SLICE.stop - FACE_SLICE.start


@pytest.fixture(scope='module')
def head(samples_dir):
    """First FRAMES frames of the talking-head clip (256x256, 30 fps), its teacher landmarks and its fps."""
    frames, fps = read_frames(samples_dir / 'head04.mp4', range(FRAMES))
    return frames, teacher_landmarks(frames), float(fps)


def test_identity_gives_zero_error_and_unit_correlation(head):
    frames, landmarks, fps = head
    result = motion_fidelity(frames, frames.copy(), fps)          # the teacher runs afresh on both
    assert set(result) == set(FIELDS)
    assert result['frames'] == FRAMES
    assert result['face_landmarks'] == FRAMES * NUM_FACE           # the face is found in every frame
    assert result['face_error_px'] == 0 and result['face_error_norm'] == 0 and result['face_pck'] == 1
    assert result['pose_error_px'] == 0 and result['pose_landmarks'] > 0
    for series in ('mouth', 'yaw', 'pitch'):
        assert result[f'{series}_corr'] == pytest.approx(1.0)
    assert result['frames_no_face_original'] == result['frames_no_face_decoded'] == 0
    assert result['hands_landmarks'] == 0 and result['hands_error_px'] is None   # chest-up: no hand in view
    assert result['face_speed_decoded_px_s'] == result['face_speed_original_px_s'] > 0
    assert amplitude_ratio(result['mouth_std_decoded'], result['mouth_std_original']) == pytest.approx(1.0)
    # the original's landmarks can be reused: same answer
    assert motion_fidelity(frames, frames, fps, original_landmarks=landmarks) == result


def test_frozen_key_frame_has_error_and_no_correlation(head):
    frames, landmarks, fps = head
    frozen = np.repeat(frames[:1], FRAMES, axis=0)
    result = motion_fidelity(frames, frozen, fps, original_landmarks=landmarks)
    # the original talks and moves its head; the frozen frame does not
    assert result['mouth_std_original'] > 0.01 and result['yaw_std_original'] > 0.01
    assert result['mouth_std_decoded'] == result['yaw_std_decoded'] == result['pitch_std_decoded'] == 0
    assert result['mouth_corr'] == result['yaw_corr'] == result['pitch_corr'] == 0.0
    assert amplitude_ratio(result['mouth_std_decoded'], result['mouth_std_original']) == 0.0
    assert amplitude_ratio(None, 0.02) is None and amplitude_ratio(0.01, 0.0) is None   # undefined / a still original
    assert result['face_error_px'] > 2 and result['face_error_norm'] > 0.03 and result['face_pck'] < 0.95
    assert result['face_speed_decoded_px_s'] == 0 and result['face_speed_original_px_s'] > 10
    assert result['frames_no_face_decoded'] == 0
    # frame 0 itself is identical in both videos: its error is 0, so the mean error comes from later frames
    first = compare_landmarks(_slice(landmarks, 1), _slice(teacher_landmarks(frozen[:1]), 1), fps)
    assert first['face_error_px'] == 0


def test_frames_without_a_face_in_the_decoded_video_are_counted(head):
    frames, landmarks, fps = head
    decoded = frames.copy()
    decoded[10:20] = 0                                             # ten black frames: no person
    result = motion_fidelity(frames, decoded, fps, original_landmarks=landmarks)
    assert result['frames_no_face_original'] == 0
    assert result['frames_no_face_decoded'] == 10
    assert result['frames_no_pose_decoded'] == 10
    assert result['face_landmarks'] == (FRAMES - 10) * NUM_FACE    # only frames with a face in both count
    assert result['face_error_px'] < 1.0 and result['mouth_corr'] > 0.9   # the other frames are the original


def test_full_body_clip_reports_pose_and_hands(samples_dir):
    frames, fps = read_frames(samples_dir / 'full01.mp4', range(30))
    original = teacher_landmarks(frames)
    identity = compare_landmarks(original, teacher_landmarks(frames.copy()), float(fps))
    assert identity['hands_original'] > 0 and identity['hands_landmarks'] > 0 and identity['hands_error_px'] == 0
    assert identity['frames_no_torso_original'] == 0 and identity['pose_pck'] == 1
    frozen = motion_fidelity(frames, np.repeat(frames[:1], len(frames), axis=0), float(fps), original)
    assert frozen['pose_error_px'] > 5 and frozen['pose_error_norm'] > 0.1 and frozen['pose_pck'] < 0.8
    assert frozen['hands_error_px'] > 10


# ---- formulas on synthetic tracks -------------------------------------------------------------------------------

def _slice(marks, stop):
    return Landmarks(marks.points[:stop], marks.found[:stop], marks.height, marks.width)


def _synthetic(t=20, seed=0):
    """A face whose eyes are 40 px apart and whose mouth opens and closes, a torso of 100 px, no hands."""
    rng = np.random.default_rng(seed)
    points = np.zeros((t, NUM_HOLISTIC, 2))
    found = np.zeros((t, NUM_HOLISTIC), bool)
    face = FACE_SLICE.start
    points[:, face:FACE_SLICE.stop] = rng.uniform(80, 160, (1, NUM_FACE, 2))
    points[:, face + 33], points[:, face + 263] = (100, 100), (140, 100)          # outer eye corners
    points[:, face + 234], points[:, face + 454] = (80, 110), (160, 110)          # cheek edges
    points[:, face + 1] = np.stack([120 + 10 * np.sin(np.arange(t)), 120 + 5 * np.cos(np.arange(t))], -1)  # nose
    points[:, face + 13] = (120, 140)
    points[:, face + 14] = np.stack([np.full(t, 120.0), 140 + 4 + 3 * np.sin(np.arange(t) / 2)], -1)
    points[:, [11, 12, 23, 24]] = [(100, 200), (140, 200), (100, 300), (140, 300)]   # shoulders, hips
    found[:, face:FACE_SLICE.stop] = True
    found[:, :25] = True
    return Landmarks(points, found, 256, 256)


def test_errors_are_in_pixels_and_normalised_by_the_inter_ocular_distance_and_torso():
    original = _synthetic()
    shifted = _synthetic()
    shifted.points = shifted.points + np.array([3.0, 4.0])                       # 5 px everywhere
    result = compare_landmarks(original, shifted, 25.0)
    assert result['face_error_px'] == pytest.approx(5.0)
    assert result['face_error_norm'] == pytest.approx(5.0 / 40)                  # IOD = 40 px
    assert result['pose_error_norm'] == pytest.approx(5.0 / 100)                 # torso = 100 px
    assert result['pose_landmarks'] == 20 * 25
    assert result['face_pck'] == 0.0 and result['pose_pck'] == 1.0              # 0.125 > 0.1 >= 0.05
    assert PCK_THRESHOLD == 0.1
    assert result['mouth_corr'] == pytest.approx(1.0) and result['yaw_corr'] == pytest.approx(1.0)
    assert result['hands_landmarks'] == 0 and result['hands_error_px'] is None
    assert result['face_speed_decoded_px_s'] == pytest.approx(result['face_speed_original_px_s'])


def test_correlation_rules_and_missing_torso():
    original = _synthetic()
    inverted = _synthetic()
    inverted.points[:, FACE_SLICE.start + 14, 1] = 2 * 144 - inverted.points[:, FACE_SLICE.start + 14, 1]
    assert compare_landmarks(original, inverted, 25.0)['mouth_corr'] == pytest.approx(-1.0)
    still = _synthetic(t=20)
    still.points[:] = still.points[:1]                                             # decoded never moves
    result = compare_landmarks(original, still, 25.0)
    assert result['mouth_corr'] == result['yaw_corr'] == result['pitch_corr'] == 0.0
    result = compare_landmarks(still, original, 25.0)                             # the original never moves
    assert result['mouth_corr'] is None and result['yaw_corr'] is None
    no_hips = _synthetic()
    no_hips.found[:, [23, 24]] = False
    result = compare_landmarks(no_hips, _synthetic(), 25.0)
    assert result['frames_no_torso_original'] == 20
    assert result['pose_error_px'] == 0 and result['pose_error_norm'] is None and result['pose_pck'] is None
    lost = _synthetic()
    lost.found[5:8, FACE_SLICE] = False
    result = compare_landmarks(original, lost, 25.0)
    assert result['frames_no_face_decoded'] == 3 and result['face_landmarks'] == 17 * NUM_FACE


def test_bad_inputs_are_rejected(head):
    frames, _, fps = head
    with pytest.raises(ValueError, match='differ in shape'):
        motion_fidelity(frames, frames[:-1], fps)
    with pytest.raises(ValueError, match='uint8'):
        motion_fidelity(frames, frames.astype(np.float32), fps)
    with pytest.raises(ValueError, match='fps'):
        compare_landmarks(_synthetic(), _synthetic(), 0)


def test_metric_ceiling_at_the_model_size(head):
    """benchmarks/bench_motion_metric: the original against itself, the teacher at 256 vs at 256 (identity after the
    rescale) and at 128x128, where a talking head's mouth is still resolved."""
    from benchmarks.bench_motion_metric import measure
    frames, _, fps = head
    results = measure(frames, fps, [256, 128])
    assert results[256]['face_error_px'] == 0 and results[256]['mouth_corr'] == pytest.approx(1.0)
    at_128 = results[128]
    assert at_128['frames_no_face_original'] == at_128['frames_no_face_decoded'] == 0
    assert 0 < at_128['face_error_px'] < 1.5                      # px at 256x256: under a pixel at 128x128
    assert at_128['mouth_corr'] > 0.8 and at_128['yaw_corr'] > 0.8
