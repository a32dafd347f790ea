"""tools/probe_motion.py on the bundled talking head with the shipped and the guided checkpoints: the decoded frame
splits into the warped key frame and the generator's own RGB, and the probe's mouth numbers are measured."""
import numpy as np
import pytest

from conftest import sample_frames
from modules.build import load_inference_models
from tools.probe_motion import COLUMNS, main, oracle_warp, probe, render_parts

FRAMES = 24


@pytest.fixture(scope='module')
def head():
    return sample_frames('head04', FRAMES, size=128)


def test_prediction_is_the_blend_of_warped_key_frame_and_rendered_rgb(repo_root, head):
    models = load_inference_models(repo_root / 'checkpoints' / 'humans256-cpu.pth')
    parts = render_parts(models, head)
    assert parts['prediction'].shape == parts['warped'].shape == parts['rendered'].shape == head.shape
    mask = parts['mask']
    assert mask.shape == head.shape[:3] and 0 <= mask.min() and mask.max() <= 1
    blend = mask[..., None] * parts['warped'] + (1 - mask[..., None]) * parts['rendered'].astype(np.float64)
    soft = mask < 0.98                                   # the rendered RGB is only recovered where it has weight
    assert np.abs(blend - parts['prediction'])[soft].mean() < 1.0      # uint8 levels
    assert parts['kp_driving'].shape == (FRAMES, 15, 3)
    # frame 0 is the key frame itself: warping it by its own keypoints changes little
    assert np.abs(parts['warped'][0].astype(int) - head[0]).mean() < 8


def test_probe_measures_the_mouth_of_a_talking_head(repo_root, head):
    guided = probe(load_inference_models(repo_root / 'checkpoints' / 'humans256-cpu-guided.pth'), head)
    assert set(guided) == {key for key, _ in COLUMNS}
    assert guided['mouth_std_original'] > 0.01                     # head04 talks in these frames
    for name in ('prediction', 'warped', 'rendered'):
        assert guided[f'{name}_amplitude'] >= 0 and -1 <= guided[f'{name}_corr'] <= 1
    # the true motion warps the mouth open further than the model's warp, and per-pixel flow about as far as 16x16
    # cells of it (measured on head04's first 24 frames)
    assert guided['oracle_amplitude'] > guided['warped_amplitude']
    assert guided['oracle_full_amplitude'] > 0.5 * guided['oracle_amplitude'] > 0
    assert 0 < guided['mask_mean'] < 1 and 0 < guided['mask_lips'] < 1
    assert -1 <= guided['lip_keypoints_corr'] <= 1                  # its keypoints 5 / 6 are guided to the inner lips
    assert abs(guided['lip_keypoints_corr']) <= guided['best_pair_corr'] <= 1
    shipped = probe(load_inference_models(repo_root / 'checkpoints' / 'humans256-cpu.pth'), head)
    assert shipped['lip_keypoints_corr'] is None                    # no guided keypoints in its config
    assert shipped['mouth_std_original'] == guided['mouth_std_original']


def test_oracle_warp_of_the_key_frame_follows_the_clip(head):
    still = np.repeat(head[:1], 4, axis=0)
    assert np.abs(oracle_warp(still).astype(int) - still).max() <= 1          # no motion: the key frame itself
    warped = oracle_warp(head[:8], grid=(16, 16))
    assert warped.shape == (8,) + head.shape[1:] and warped.dtype == np.uint8
    # warping towards each frame brings the key frame closer to it than the key frame held still
    assert np.abs(warped[1:].astype(int) - head[1:8]).mean() < np.abs(still[:1].astype(int) - head[1:8]).mean()


def test_bad_checkpoint_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / 'missing.pth')]) == 2
    assert capsys.readouterr().err.startswith('error: ')
