"""optical_flow.py and the motion_flow loss on the bundled real talking head: a known shift is recovered, the flow
warps the key frame towards each frame, training items carry it, and training on it teaches the deformation."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import sample_frames
from modules.model import flow_loss, keypoint_flow_error, keypoint_flow_loss
from modules.util import make_coordinate_grid
from optical_flow import consistency_mask, dis_flow, flow_target, warp_by_flow
from train import Trainer, make_datasets


@pytest.fixture(scope='module')
def head():
    return sample_frames('head04', 24, size=128)


def test_a_known_shift_is_recovered_in_normalised_units(head):
    shift = (3, -2)                                       # the driving frame shows the scene moved 3 px right, 2 px up
    source = head[0]
    driving = np.roll(source, shift=(shift[1], shift[0]), axis=(0, 1))
    offsets, confidence = flow_target(source, driving)
    assert offsets.shape == (2, 128, 128) and confidence.shape == (1, 128, 128)
    inner = (slice(16, -16), slice(16, -16))              # away from the wrapped borders
    # driving at p looks like source at p - shift: the backward flow is -shift, in units of 2 / (size - 1)
    np.testing.assert_allclose(np.median(offsets[0][inner]), -shift[0] * 2 / 127, atol=0.2 * 2 / 127)
    np.testing.assert_allclose(np.median(offsets[1][inner]), -shift[1] * 2 / 127, atol=0.2 * 2 / 127)
    assert confidence[0][inner].mean() > 0.9


def test_flow_warps_the_key_frame_towards_every_frame(head):
    flow = dis_flow(head, head[0])
    assert flow.shape == head.shape[:3] + (2,) and flow.dtype == np.float32
    np.testing.assert_allclose(flow[0], 0, atol=0.05)                        # the key frame against itself
    warped = warp_by_flow(head[0], flow)
    frozen_error = np.abs(head[1:].astype(int) - head[0]).mean()
    assert np.abs(warped[1:].astype(int) - head[1:]).mean() < 0.7 * frozen_error
    cells = warp_by_flow(head[0], flow, grid=(16, 16))                       # motion known on 16x16 cells only
    assert np.abs(cells[1:].astype(int) - head[1:]).mean() < frozen_error


def test_inconsistent_flows_are_masked():
    forward = np.zeros((32, 32, 2), np.float32)
    forward[..., 0] = 2.0
    assert consistency_mask(forward, -forward)[:, :28].min() == 1.0         # consistent where p + f is inside
    assert consistency_mask(forward, -forward)[:, 31].max() == 0.0          # p + f leaves the frame
    assert consistency_mask(forward, np.zeros_like(forward)).max() == 0.0   # the way back does not return


def test_flow_loss_is_zero_for_the_teacher_motion_and_grows_with_the_error():
    flow = torch.zeros(2, 2, 16, 16)
    flow[:, 0] = 0.1
    confidence = torch.ones(2, 1, 16, 16)
    identity = make_coordinate_grid((4, 16, 16))[None].expand(2, 4, 16, 16, 3)
    moved = identity + torch.tensor([0.1, 0.0, 0.0])
    assert float(flow_loss(moved, flow, confidence)) < 1e-6
    assert float(flow_loss(identity, flow, confidence)) == pytest.approx(0.05, rel=1e-4)   # |0.1 - 0| over x and y
    confidence[:, :, :8] = 0                                                 # only the confident pixels count
    assert float(flow_loss(identity, flow, confidence)) == pytest.approx(0.05, rel=1e-4)


def test_keypoint_flow_loss_wants_keypoints_that_move_with_the_image():
    flow = torch.zeros(1, 2, 33, 33)
    flow[:, 0, :, 17:] = 0.2                   # the right half of the driving frame came from 0.2 further right
    confidence = torch.ones(1, 1, 33, 33)
    kp_driving = torch.tensor([[[-0.5, 0.0, 0.0], [0.5, 0.0, 0.3]]])
    with_the_flow = kp_driving + torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]]])
    assert float(keypoint_flow_loss(with_the_flow, kp_driving, flow, confidence)) < 1e-6
    still = float(keypoint_flow_loss(kp_driving, kp_driving, flow, confidence))
    assert still == pytest.approx(0.2 / 4)     # one keypoint of two is 0.2 off in x, none in y
    # in pixels: keypoints that stay still are off by the flow's length at them, 0.2 * (33 - 1) / 2 = 3.2 px for one
    assert float(keypoint_flow_error(kp_driving, kp_driving, flow, confidence)[0]) == pytest.approx(1.6)
    confidence[..., 17:] = 0                   # where the flow is not trusted, nothing is asked
    assert float(keypoint_flow_loss(kp_driving, kp_driving, flow, confidence)) < 1e-6


def test_training_on_the_flow_teaches_the_deformation(tiny_config):
    tiny_config['train_params']['loss_weights'].update(motion_flow=100, keypoint_flow=100, generator_gan=0,
                                                       discriminator_gan=0, feature_matching=0)
    train_set, _ = make_datasets(tiny_config)
    torch.manual_seed(0)
    batch = next(iter(DataLoader(train_set, batch_size=4, shuffle=True)))
    assert batch['flow'].shape == (4, 2, 64, 64) and batch['flow_confidence'].shape == (4, 1, 64, 64)
    assert 0.3 < float(batch['flow_confidence'].mean()) <= 1
    trainer = Trainer(tiny_config, 'cpu')
    losses = [trainer.step(batch)[0] for _ in range(30)]
    assert losses[-1]['motion_flow'] < 0.5 * losses[0]['motion_flow']
    assert losses[-1]['keypoint_flow'] < 0.5 * losses[0]['keypoint_flow']


def test_validation_reports_the_motion_error_against_no_motion(tiny_config):
    _, validation_set = make_datasets(tiny_config)
    trainer = Trainer(tiny_config, 'cpu')
    result = trainer.validate(validation_set, num_videos=1, num_frames=4)
    assert result['flow_epe'] >= 0 and result['keypoint_flow_epe'] >= 0
    # no motion is as far from the flow as the flow is long: recomputed here from the same frames
    clip = validation_set.read_clip(0, 4)
    frames = (clip['video'] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    magnitudes = []
    for frame in frames[1:]:
        offsets, confidence = flow_target(frames[0], frame)
        pixels = offsets * np.array([(64 - 1) / 2, (64 - 1) / 2], np.float32)[:, None, None]
        magnitudes.append((np.linalg.norm(pixels, axis=0) * confidence[0]).sum() / confidence.sum())
    assert result['flow_epe_frozen'] == pytest.approx(np.mean(magnitudes), rel=1e-3)
    assert result['flow_epe_frozen'] > 0.1                        # the talking head moves in these frames


def test_warp_ceiling_renditions_of_a_talking_head(head):
    from benchmarks.bench_warp_ceiling import renditions, sequence_ms_ssim
    shown = renditions(head, head[0], grids=[16, 0])
    assert list(shown) == ['frozen', 'oracle 16x16', 'oracle per pixel']
    assert all(video.shape == head.shape and video.dtype == np.uint8 for video in shown.values())
    assert (shown['frozen'] == head[0]).all()
    scores = {name: sequence_ms_ssim(head, video) for name, video in shown.items()}
    # the true motion brings the key frame closer to the clip, per pixel at least as close as on 16x16 cells
    assert scores['frozen'] < scores['oracle 16x16'] <= scores['oracle per pixel'] + 0.005
