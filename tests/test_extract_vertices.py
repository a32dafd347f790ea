"""tools/extract_vertices.py on the bundled real clips: holistic labels, flip table, OSX import, overlays."""
import numpy as np
import pytest

from tools.extract_vertices import (FACE_MESH_MIRROR, FACE_SLICE, LEFT_HAND_SLICE, NUM_HOLISTIC, NUM_SMPLX,
                                    RIGHT_HAND_SLICE, derive_face_mesh_mirror, holistic_flip_index, main,
                                    osx_labels)
from video_io import read_frames, write_video

NUM = 12  # frames per labelled test clip


@pytest.fixture(scope='module')
def clips(tmp_path_factory, samples_dir):
    """A prepared-set layout with the first NUM frames of both real sample clips (lossless copies)."""
    root = tmp_path_factory.mktemp('set')
    for name, split in (('head04', 'test'), ('full01', 'train')):
        frames, fps = read_frames(samples_dir / f'{name}.mp4', range(NUM))
        write_video(root / split / f'{name}.mp4', frames, fps)
    return root


@pytest.fixture(scope='module')
def labelled(clips):
    assert main(['--root', str(clips), '--overlay']) == 0
    return {name: dict(np.load(clips / 'vertices' / f'{name}.npz')) for name in ('head04', 'full01')}


def test_label_shapes_ranges_and_metadata(labelled):
    for labels in labelled.values():
        assert labels['vertices'].shape == (NUM, NUM_HOLISTIC, 2) and labels['vertices'].dtype == np.float32
        assert labels['confidence'].shape == (NUM, NUM_HOLISTIC) and labels['confidence'].dtype == np.float32
        assert np.abs(labels['vertices']).max() <= 1.0
        assert labels['confidence'].min() >= 0.0 and labels['confidence'].max() <= 1.0
        assert str(labels['teacher']) == 'holistic' and '543' in str(labels['layout'])
        np.testing.assert_array_equal(labels['flip_index'], holistic_flip_index())
        # The face is found on every frame of these clips.
        assert (labels['confidence'][:, FACE_SLICE] == 1.0).all()


def test_undetected_hands_have_zero_confidence(labelled):
    head = labelled['head04']  # chest-up talking head: no hand in view
    for part in (LEFT_HAND_SLICE, RIGHT_HAND_SLICE):
        assert (head['confidence'][:, part] == 0).all()
        assert (head['vertices'][:, part] == 0).all()
    dancer = labelled['full01']  # full body, arms up: hands found in some frames, never half a hand
    hands = dancer['confidence'][:, LEFT_HAND_SLICE.start:RIGHT_HAND_SLICE.stop].reshape(NUM, 2, 21)
    assert hands.any()
    assert ((hands == 0).all(-1) | ((hands > 0).sum(-1) >= 15)).all()


def test_nose_lies_in_the_face_found_by_a_second_detector(labelled, clips):
    import mediapipe as mp
    for name, split in (('head04', 'test'), ('full01', 'train')):
        frames, _ = read_frames(clips / split / f'{name}.mp4')
        labels = labelled[name]
        checked = 0
        with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector:
            for frame, vertices, confidence in zip(frames, labels['vertices'], labels['confidence']):
                found = detector.process(frame).detections
                if not found:
                    continue
                box = found[0].location_data.relative_bounding_box  # fractions of the frame
                x0, y0 = 2 * box.xmin - 1, 2 * box.ymin - 1
                x1, y1 = x0 + 2 * box.width, y0 + 2 * box.height
                nose = vertices[0]
                assert confidence[0] > 0.5
                assert x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1, (name, nose, (x0, y0, x1, y1))
                checked += 1
        assert checked >= NUM // 2
        assert (labels['vertices'][:, 0, 1] < 0).all()  # the nose is in the upper half of the crop


def test_flip_index_matches_labels_of_the_mirrored_clip(labelled, clips, tmp_path):
    frames, fps = read_frames(clips / 'test' / 'head04.mp4')
    write_video(tmp_path / 'test' / 'head04.mp4', frames[:, :, ::-1], fps)
    assert main(['--root', str(tmp_path)]) == 0
    mirrored = np.load(tmp_path / 'vertices' / 'head04.npz')
    original = labelled['head04']
    flip = original['flip_index']
    assert np.array_equal(flip[flip], np.arange(NUM_HOLISTIC))
    expected = original['vertices'][:, flip] * np.array([-1.0, 1.0], np.float32)
    both = (mirrored['confidence'] > 0.5) & (original['confidence'][:, flip] > 0.5)
    face = both[:, FACE_SLICE]
    error = np.linalg.norm(mirrored['vertices'] - expected, axis=-1)
    assert face.mean() > 0.9
    assert np.median(error[:, FACE_SLICE][face]) < 0.02  # about 2.5 pixels at 256x256
    # Without the face mirror table (identity), the same comparison is far off.
    naive = original['vertices'][:, FACE_SLICE] * np.array([-1.0, 1.0], np.float32)
    assert np.median(np.linalg.norm(mirrored['vertices'][:, FACE_SLICE] - naive, axis=-1)[face]) > 0.05


def test_face_mirror_table_rederived_from_the_sample_clip(samples_dir):
    frames, _ = read_frames(samples_dir / 'head04.mp4', range(0, 60, 12))
    derived = derive_face_mesh_mirror(frames)
    agreement = np.mean(derived == np.asarray(FACE_MESH_MIRROR))
    assert agreement > 0.95
    fixed = np.flatnonzero(np.asarray(FACE_MESH_MIRROR) == np.arange(468))
    assert {1, 4, 13, 14, 152, 10} <= set(fixed)  # midline: nose tip, lips, chin, forehead
    assert FACE_MESH_MIRROR[33] == 263 and FACE_MESH_MIRROR[61] == 291  # eye and mouth corners


def test_overlay_outputs(labelled, clips):
    overlay, _ = read_frames(clips / 'vertices' / 'overlay' / 'head04.mp4')
    source, _ = read_frames(clips / 'test' / 'head04.mp4')
    assert overlay.shape == source.shape
    assert np.abs(overlay.astype(int) - source).mean() > 0.5  # labels drawn
    assert (clips / 'vertices' / 'overlay' / 'head04.png').stat().st_size > 1000


def test_osx_import_formats(tmp_path, clips):
    frames = 3
    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 255, (frames, NUM_SMPLX, 2)).astype(np.float32)
    pixels[0, 0] = (0, 0)
    pixels[0, 1] = (255, 255)
    pixels[0, 2] = (300, 10)  # outside the 256x256 frame
    np.savez(tmp_path / 'clipA.npz', vertices=pixels, valid=np.array([True, False, True]))
    vertices, confidence, flip = osx_labels(tmp_path, 'clipA', frames, 256, 256)
    assert vertices.shape == (frames, NUM_SMPLX, 2) and flip is None
    np.testing.assert_allclose(vertices[0, :2], [[-1, -1], [1, 1]], atol=1e-6)
    assert confidence[0, 2] == 0 and vertices[0, 2, 0] == 1.0
    assert (confidence[1] == 0).all() and (confidence[2] == 1).all()
    (tmp_path / 'clipB').mkdir()
    np.save(tmp_path / 'clipB' / '000002.npy', pixels[2])
    vertices, confidence, _ = osx_labels(tmp_path, 'clipB', frames, 256, 256)
    assert (confidence[:2] == 0).all() and (confidence[2] == 1).all()
    np.testing.assert_allclose(vertices[2], pixels[2] * 2 / 255 - 1, atol=1e-5)
    np.save(tmp_path / 'clipC.npy', pixels[:, :100])
    with pytest.raises(ValueError, match='expected'):
        osx_labels(tmp_path, 'clipC', frames, 256, 256)
    with pytest.raises(FileNotFoundError, match='no OSX output'):
        osx_labels(tmp_path, 'clipD', frames, 256, 256)
    # Through the command line, with a bad clip next to a good one.
    root = tmp_path / 'set'
    source, fps = read_frames(clips / 'test' / 'head04.mp4', range(frames))
    write_video(root / 'train' / 'clipA.mp4', source, fps)
    (root / 'train' / 'clipZ.mp4').write_text('broken')
    flip_file = tmp_path / 'flip.npy'
    np.save(flip_file, np.arange(NUM_SMPLX)[::-1])
    assert main(['--root', str(root), '--teacher', 'osx', '--osx-dir', str(tmp_path),
                 '--osx-flip-index', str(flip_file)]) == 1
    labels = np.load(root / 'vertices' / 'clipA.npz')
    assert str(labels['teacher']) == 'osx' and labels['vertices'].shape == (frames, NUM_SMPLX, 2)
    assert labels['flip_index'][0] == NUM_SMPLX - 1
    assert not (root / 'vertices' / 'clipZ.npz').exists()
