"""VVC key-reference frame / anchor coding (coding/vvc.py) on a real clip: vvenc for real, vtm via fakes."""
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from coding import vvc
from video_io import read_frames

REPO = Path(__file__).resolve().parents[1]
FAKE_VTM = REPO / 'tests' / 'fake_vtm'


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope='module')
def frames():
    """Six real frames (256x256) of the bundled head04 sample."""
    clip, _ = read_frames(REPO / 'data' / 'samples' / 'head04.mp4', range(6))
    return clip


@pytest.fixture
def fake_vtm(tmp_path, monkeypatch):
    """EncoderApp / DecoderApp executables (wrappers around tests/fake_vtm/vtm_fake.py) in the environment."""
    paths = {}
    for name, mode in (('EncoderApp', 'encoder'), ('DecoderApp', 'decoder')):
        path = tmp_path / 'bin' / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_VTM / "vtm_fake.py"}" {mode} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        paths[name] = path
    log = tmp_path / 'vtm_calls.log'
    monkeypatch.setenv('VTM_ENCODER', str(paths['EncoderApp']))
    monkeypatch.setenv('VTM_DECODER', str(paths['DecoderApp']))
    monkeypatch.setenv('VTM_CFG_DIR', str(FAKE_VTM / 'cfg'))
    monkeypatch.setenv('FAKE_VTM_LOG', str(log))
    return log


def test_colour_conversion_round_trip_is_close(frames):
    for bit_depth in (8, 10):
        yuv = vvc.rgb_to_yuv420(frames[:2], bit_depth)
        assert len(yuv) == 2 * 256 * 256 * 3 // 2 * (1 if bit_depth == 8 else 2)
        back = vvc.yuv420_to_rgb(yuv, 256, 256, bit_depth)
        assert back.shape == frames[:2].shape
        assert psnr(back, frames[:2]) > 40  # only the 4:2:0 chroma subsampling loses detail


def test_vvenc_intra_two_qps(frames):
    low, high = vvc.encode_intra(frames[0], 32), vvc.encode_intra(frames[0], 42)
    assert (low.backend, low.qp, high.qp) == ('vvenc', 32, 42)
    assert len(high.bitstream) < len(low.bitstream)
    assert high.bits == 8 * len(high.bitstream)
    assert low.frames.shape == (1, 256, 256, 3) and low.frames.dtype == np.uint8
    assert psnr(low.frames[0], frames[0]) > psnr(high.frames[0], frames[0]) > 28
    # the decoder alone reproduces the encoder's closed-loop reconstruction exactly
    np.testing.assert_array_equal(vvc.decode(high.bitstream, 256, 256), high.frames)


def test_vvenc_lowdelay_sequence(frames):
    seq = vvc.encode_sequence(frames, 42, fps=30)
    assert seq.frames.shape == frames.shape and (seq.backend, seq.qp) == ('vvenc', 42)
    intra = vvc.encode_intra(frames[0], 42)
    assert seq.bits < len(frames) * intra.bits  # inter prediction works
    assert min(psnr(a, b) for a, b in zip(seq.frames, frames)) > 28


def test_vvenc_key_frame_chain_is_prefix_stable(frames):
    """The chain of n key frames is a byte prefix of the chain of n + 1 (what inter-coded key frames rely on), and
    the appended bytes, decoded after the prefix, give the new picture."""
    backend = vvc.get_backend('vvenc')
    keys = frames[::2]
    chains = [backend.encode_chain(keys[:n], 42, fps=30) for n in (1, 2, 3)]
    for shorter, longer in zip(chains, chains[1:]):
        assert longer.bitstream.startswith(shorter.bitstream) and len(longer.bitstream) > len(shorter.bitstream)
        np.testing.assert_array_equal(longer.frames[:len(shorter.frames)], shorter.frames)
    full = chains[-1]
    np.testing.assert_array_equal(vvc.decode(full.bitstream, 256, 256), full.frames)
    # the first picture is the intra key frame's quality; the P pictures cost far fewer bytes than intra ones
    intra = vvc.encode_intra(keys[0], 42)
    assert abs(psnr(full.frames[0], keys[0]) - psnr(intra.frames[0], keys[0])) < 0.5
    added = len(full.bitstream) - len(chains[0].bitstream)
    assert added < len(intra.bitstream) and min(psnr(a, b) for a, b in zip(full.frames, keys)) > 26
    # every chain length the encoder uses codes (frame-parallel libvvenc wrote nothing for 14 and 15 pictures)
    small = frames[:, :64, :64]
    for n in (14, 15):
        assert len(backend.encode_chain(np.concatenate([small] * 3)[:n], 42, fps=30).frames) == n
    with pytest.raises(vvc.VVCError, match='cannot code predicted key frames'):
        vvc.VTM().encode_chain(keys, 42, fps=30)


def test_vtm_backend_through_fake_executables(frames, fake_vtm):
    result = vvc.encode_intra(frames[0], 37, backend='vtm', fps=30)
    assert (result.backend, result.qp) == ('vtm', 37)
    assert psnr(result.frames[0], frames[0]) > 28
    # the bitstream is standard VVC: ffmpeg's own decoder reads it too
    assert psnr(vvc.decode(result.bitstream, 256, 256)[0], result.frames[0]) > 40
    seq = vvc.encode_sequence(frames[:4], 37, fps=29.97, backend='vtm')
    assert seq.frames.shape == (4, 256, 256, 3)
    enc_intra, dec_intra, enc_seq, dec_seq = fake_vtm.read_text().splitlines()
    cfg = FAKE_VTM / 'cfg'
    assert enc_intra.startswith(f'encoder -c {cfg}/encoder_intra_vtm.cfg -i ')
    assert ' -q 37 -f 1 -wdt 256 -hgt 256 -fr 30 --InputBitDepth=8 --OutputBitDepth=8 --Level=2' in enc_intra
    assert enc_seq.startswith(f'encoder -c {cfg}/encoder_lowdelay_vtm.cfg ')
    assert ' -f 4 ' in enc_seq and ' -fr 30 ' in enc_seq
    assert dec_intra.startswith('decoder -b ') and dec_intra.endswith(' -d 8')


def test_vtm_errors_are_clear(frames, fake_vtm, monkeypatch):
    monkeypatch.setenv('VTM_ENCODER', os.environ['VTM_DECODER'])  # wrong tool: rejects EncoderApp's options
    with pytest.raises(vvc.VVCError, match=r'VTM EncoderApp failed \(exit code 1\)[\s\S]*unknown or incomplete option -c'):
        vvc.encode_intra(frames[0], 37, backend='vtm')
    monkeypatch.delenv('VTM_DECODER')
    with pytest.raises(vvc.VVCError, match='VTM_DECODER'):
        vvc.encode_intra(frames[0], 37, backend='vtm')


def test_bad_input_is_rejected(frames):
    with pytest.raises(ValueError, match='even width and height'):
        vvc.encode_intra(frames[0, :255], 32)
    with pytest.raises(ValueError, match='QP'):
        vvc.encode_intra(frames[0], 70)
    with pytest.raises(ValueError, match='backend'):
        vvc.encode_intra(frames[0], 32, backend='hm')
    with pytest.raises(vvc.VVCError, match='VVC decoding'):
        vvc.decode(b'\x00\x00\x01garbage', 256, 256)


def test_level_fits_the_size():
    assert vvc.vvc_level(64, 64, 25) == '1'
    assert vvc.vvc_level(256, 256, 30) == '2'
    assert vvc.vvc_level(384, 384, 25) == '2.1'
    assert vvc.vvc_level(1920, 1080, 30) == '4'


def test_backends_are_classes_behind_one_interface(frames, fake_vtm, monkeypatch):
    assert vvc.BACKENDS == ('vvenc', 'vtm') and vvc.DEFAULT_BACKEND == 'vvenc'
    for name in vvc.BACKENDS:
        backend = vvc.get_backend(name)
        assert isinstance(backend, vvc.VVCBackend) and backend.name == name and backend.description()
        result = backend.encode_intra(frames[0], 37, fps=30)
        assert result.backend == name
        # the module functions are the same backend reached by name
        assert result.bitstream == vvc.encode_intra(frames[0], 37, backend=name, fps=30).bitstream
        np.testing.assert_array_equal(backend.decode(result.bitstream, 256, 256, max_frames=1), result.frames)
    tools = vvc.VTMTools(decoder=os.environ['VTM_DECODER'])
    assert vvc.get_backend('vtm', tools).tools is tools
    with pytest.raises(ValueError, match=r"unknown VVC backend 'hm'; choose one of \('vvenc', 'vtm'\)"):
        vvc.get_backend('hm')
    assert vvc.auto_backend() == 'vtm'
    monkeypatch.delenv('VTM_ENCODER')
    assert vvc.auto_backend() == 'vvenc'
