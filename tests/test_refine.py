"""Encoder-side keypoint refinement (coding/refine.py, Encoder(refine_steps=...)) on the bundled talking head with the
shipped checkpoint: the refined keypoints render the original frames more closely, and the decoder, unchanged,
renders exactly what the encoder measured."""
import math

import numpy as np
import pytest
import torch
from conftest import sample_frames

from coding.codec import DEFAULT_REFINE_STEPS, Decoder, Encoder, refine_steps_of
from coding.refine import refine_keypoints, rendering_error
from modules.build import load_inference_models
from modules.render import frames_to_tensor

#: frames 0, 8, ..., 56 of head04: the head turns and the mouth opens over them
FRAMES = 57
STRIDE = 8


@pytest.fixture(scope='module')
def shipped(repo_root):
    return repo_root / 'checkpoints' / 'humans256-cpu.pth'


@pytest.fixture(scope='module')
def frames():
    return sample_frames('head04', FRAMES, size=128)[::STRIDE]


def _l1(models, features, kp_source, kp, targets):
    with torch.no_grad():
        return rendering_error(models.generator.render(features, kp_source, kp)['prediction'], targets)


def test_refinement_brings_each_rendering_closer_to_the_original(shipped, frames):
    models = load_inference_models(shipped)
    images = frames_to_tensor(frames)
    with torch.no_grad():
        keypoints = models.kp_detector(images)
        features = models.generator.encode_source(images[:1])
    targets, kp_source, detected = images[1:], keypoints[:1], keypoints[1:]
    before = _l1(models, features, kp_source, detected, targets)
    refined = refine_keypoints(models.generator, features, kp_source, detected, targets, steps=6)
    after = _l1(models, features, kp_source, refined, targets)
    assert refined.shape == detected.shape and not refined.requires_grad
    assert refined.abs().max() <= 1
    assert (after <= before).all()                      # the best keypoints seen are kept, the start included
    assert after.mean() < 0.92 * before.mean()          # measured: 0.85x
    # the search moves the keypoints by pixels, not across the frame
    moved = (refined - detected)[..., :2].abs().amax().item() * 64
    assert 0.5 < moved < 20
    torch.testing.assert_close(refine_keypoints(models.generator, features, kp_source, detected, targets, 0),
                               detected)


def test_refinement_refuses_bad_arguments(shipped, frames):
    models = load_inference_models(shipped)
    images = frames_to_tensor(frames[:2])
    with torch.no_grad():
        kp = models.kp_detector(images)
        features = models.generator.encode_source(images[:1])
    for steps, lr in ((-1, 0.01), (2, 0.0)):
        with pytest.raises(ValueError, match='steps >= 0 and lr > 0'):
            refine_keypoints(models.generator, features, kp[:1], kp[1:], images[1:], steps, lr)
    with pytest.raises(ValueError, match='keypoint sets for'):
        refine_keypoints(models.generator, features, kp[:1], kp, images[1:], 2)


def test_encoder_with_refinement_codes_what_the_decoder_renders_and_gains_psnr(shipped, frames):
    psnr = {}
    for steps in (0, 4):
        encoder = Encoder(shipped, qp=42, refresh_threshold=math.inf, refine_steps=steps)
        data = encoder.encode(frames, fps=30 / STRIDE)
        decoded = np.stack([frame for frame, _ in Decoder(shipped).decode(data)])
        error = ((decoded.astype(np.float64) - frames) ** 2).mean(axis=(1, 2, 3))
        measured = 10 * np.log10(255 ** 2 / error)
        # the encoder's closed-loop PSNR (refresh decisions) is that of what the decoder renders
        np.testing.assert_allclose(encoder.psnr, measured, atol=1e-4)
        psnr[steps] = measured[1:].mean()
    assert psnr[4] > psnr[0] + 0.5                       # measured: +1.1 dB


def test_encoder_warm_starts_each_batch_from_the_previous_refinement(shipped):
    """The third detector batch starts from the detector's keypoints plus the correction refinement found for the
    last frame of the second: with the same few steps it renders closer than a search started from the detector's."""
    from coding import keypoint_coder
    from coding.codec import DETECTOR_BATCH
    clip = sample_frames('head04', 3 * DETECTOR_BATCH, size=128)
    steps = 6
    encoder = Encoder(shipped, qp=42, refresh_threshold=math.inf, refine_steps=steps)
    encoder.encode(clip, fps=30)
    third = slice(2 * DETECTOR_BATCH, 3 * DETECTOR_BATCH)
    models = load_inference_models(shipped)
    key_frame = frames_to_tensor(encoder.key_frame[None])
    targets = frames_to_tensor(clip[third])
    with torch.no_grad():
        features = models.generator.encode_source(key_frame)
        detected = models.kp_detector(targets)
    kp_source = torch.from_numpy(encoder.keypoints[:1])
    cold = refine_keypoints(models.generator, features, kp_source, detected, targets, steps)
    cold = torch.from_numpy(keypoint_coder.dequantize(keypoint_coder.quantize(cold.numpy(), encoder.kp_step),
                                                      encoder.kp_step))
    warm = torch.from_numpy(encoder.keypoints[third])
    cold_error = _l1(models, features, kp_source, cold, targets).mean()
    warm_error = _l1(models, features, kp_source, warm, targets).mean()
    assert warm_error < 0.995 * cold_error               # measured: 0.990 (exactly 1 without the warm start)


def test_cli_refine_steps_reach_the_encoder(tmp_path, shipped, frames):
    import codec as cli
    from video_io import write_video
    clip = tmp_path / 'head04.mp4'
    write_video(clip, frames, 30 / STRIDE)
    keypoints = {}
    for steps in (0, 3):
        out = tmp_path / f'{steps}.s2d'
        assert cli.main(['encode', '--checkpoint', str(shipped), '--input', str(clip), '--output', str(out),
                         '--no-crop', '--refine-steps', str(steps)]) == 0
        keypoints[steps] = Decoder(shipped).decode_keypoints(out.read_bytes())[0]
    np.testing.assert_array_equal(keypoints[0][0], keypoints[3][0])      # the key frame's: detected on it
    assert (keypoints[0][1:] != keypoints[3][1:]).any()


def test_refine_steps_come_from_the_argument_then_the_config():
    assert refine_steps_of({}) == DEFAULT_REFINE_STEPS == 20
    assert refine_steps_of({'codec_params': {'refine_steps': 7}}) == 7
    assert refine_steps_of({'codec_params': {'refine_steps': 7}}, 2) == 2
    for bad in (-1, 1.5, True, '3'):
        with pytest.raises(ValueError, match='refine_steps must be an integer >= 0'):
            refine_steps_of({}, bad)
