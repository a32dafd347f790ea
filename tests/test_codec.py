"""Encoder / Decoder (coding/codec.py) and the codec.py command line, on real frames with a tiny random model."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sample_frames

import codec as cli
from coding import bitstream, keypoint_coder
from coding.codec import Decoder, Encoder, read_video
from modules.render import frames_to_tensor
from video_io import probe, read_frames, write_video

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / 'data' / 'samples' / 'head04.mp4'
T = 10


@pytest.fixture(scope='module')
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope='module')
def frames():
    """T real frames of the head04 sample at the tiny model's 64x64."""
    return sample_frames('head04', T)


@pytest.fixture(scope='module')
def coded(checkpoint, frames):
    encoder = Encoder(checkpoint, kp_step=0.01, qp=37)
    return encoder, encoder.encode(frames, fps=30)


def test_round_trip_is_exact_and_deterministic(checkpoint, coded, frames):
    encoder, data = coded
    acc = encoder.account
    assert acc.total_bits == 8 * len(data)
    assert acc.per_frame().sum() == pytest.approx(acc.total_bits)
    assert acc.frame_count == T and acc.kbps == pytest.approx(acc.total_bits * 30 / T / 1000)
    stream = bitstream.parse(data)
    assert (stream.key_codec, stream.segments[0].qp, stream.kp_step, stream.frame_count) == ('vvenc', 37, 0.01, T)

    decoder = Decoder(checkpoint)
    quantized, keypoints = decoder.decode_keypoints(data)
    np.testing.assert_array_equal(quantized, encoder.quantized)
    np.testing.assert_array_equal(keypoints, encoder.keypoints)
    first = list(decoder.decode(data))
    second = list(decoder.decode(data))
    assert len(first) == T
    for (frame_a, verts_a), (frame_b, verts_b) in zip(first, second):
        assert frame_a.shape == (64, 64, 3) and frame_a.dtype == np.uint8
        assert verts_a.shape == (543, 2) and verts_a.dtype == np.float32
        np.testing.assert_array_equal(frame_a, frame_b)
        np.testing.assert_array_equal(verts_a, verts_b)
    np.testing.assert_array_equal(first[0][0], encoder.key_frame)  # frame 0 is the decoded key frame


def test_encoder_is_closed_loop(coded, frames):
    encoder, _ = coded
    assert not np.array_equal(encoder.key_frame, frames[0])  # VVC at QP 37 is lossy
    with torch.inference_mode():
        kp = encoder.models.kp_detector(frames_to_tensor(encoder.key_frame[None]))[0].numpy()
    np.testing.assert_array_equal(encoder.quantized[0], keypoint_coder.quantize(kp, 0.01))


def test_decoding_streams_one_frame_at_a_time(checkpoint, coded, monkeypatch):
    decoder = Decoder(checkpoint)
    calls = []
    render = decoder.models.generator.render
    monkeypatch.setattr(decoder.models.generator, 'render', lambda *a: calls.append(1) or render(*a))
    frames = decoder.decode(coded[1])
    assert calls == []
    next(frames)
    assert len(calls) == 1
    next(frames)
    assert len(calls) == 2


def test_wrong_checkpoint_is_a_clear_error(coded, tmp_path, tiny_checkpoint_factory):
    other = Decoder(tiny_checkpoint_factory(tmp_path / 'other.pth', seed=1))
    with pytest.raises(bitstream.BitstreamError, match='checkpoint that was used for encoding'):
        other.decode(coded[1])


def test_bad_frames_are_rejected(checkpoint):
    encoder = Encoder(checkpoint)
    with pytest.raises(ValueError, match=r'the model needs uint8 \(64, 64, 3\)'):
        encoder.encode(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match='no frame'):
        encoder.encode([])
    with pytest.raises(ValueError, match='kp_step'):
        Encoder(checkpoint, kp_step=0)


def test_cli_encode_decode(checkpoint, frames, tmp_path, capsys):
    clip = tmp_path / 'clip64.mp4'
    write_video(clip, frames, 30)
    out = tmp_path / 'clip.s2d'
    assert cli.main(['encode', '--checkpoint', checkpoint, '--input', str(clip), '--output', str(out),
                     '--no-crop', '--qp', '40', '--kp-step', '0.02', '--frames', '8']) == 0
    printed = capsys.readouterr().out
    size_bits = 8 * out.stat().st_size
    assert f'total {size_bits} bits = {size_bits * 30 / 8 / 1000:.3f} kbps' in printed
    assert 'key frame' in printed and 'header' in printed
    recon, vertices, pngs = tmp_path / 'recon.mp4', tmp_path / 'v.npz', tmp_path / 'png'
    assert cli.main(['decode', '--checkpoint', checkpoint, '--input', str(out), '--output', str(recon),
                     '--vertices', str(vertices), '--png-dir', str(pngs)]) == 0
    decoded, fps = read_frames(recon)
    assert decoded.shape == (8, 64, 64, 3) and fps == 30
    assert np.load(vertices)['vertices'].shape == (8, 543, 2)
    assert sorted(p.name for p in pngs.iterdir())[-1] == '0000007.png'
    # the video is lossless: it holds exactly the frames the library decoder produces
    library = [frame for frame, _ in Decoder(checkpoint).decode(out.read_bytes())]
    np.testing.assert_array_equal(decoded, np.stack(library))


def test_cli_errors(checkpoint, tmp_path, capsys):
    out = tmp_path / 'x.s2d'
    assert cli.main(['encode', '--checkpoint', checkpoint, '--input', str(SAMPLE), '--output', str(out),
                     '--no-crop']) == 1
    assert 'is 256x256 but the model needs 64x64; drop --no-crop' in capsys.readouterr().err
    out.write_bytes(b'not a bitstream')
    assert cli.main(['decode', '--checkpoint', checkpoint, '--input', str(out), '--output',
                     str(tmp_path / 'r.mp4')]) == 1
    assert 'not a Sparse2Dense .s2d bitstream' in capsys.readouterr().err
    assert not (tmp_path / 'r.mp4').exists()


def test_read_video_person_crop_and_resampling():
    frames, count, fps = read_video(SAMPLE, 64, crop='person', max_frames=4, fps=15)
    frames = list(frames)
    assert count == 4 and fps == 15 and len(frames) == 4
    assert frames[0].shape == (64, 64, 3)
    assert probe(SAMPLE).fps == 30


def test_cli_runs_as_a_script(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / 'codec.py'), 'decode', '--checkpoint', checkpoint,
                           '--input', str(tmp_path / 'missing.s2d'), '--output', str(tmp_path / 'r.mp4')],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and 'missing.s2d' in proc.stderr
