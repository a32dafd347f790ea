"""Issue 11: hostile or careless inputs (crafted checkpoints, bitstreams, weight files, output paths) must not run
code, destroy data or exhaust the machine. Hostile payloads here only ever write a marker file in tmp_path."""
import copy
import os
import stat
import warnings

import numpy as np
import pytest
import torch
import yaml

import codec as cli
from coding import bitstream, vvc
from coding.codec import Decoder, Encoder
from tests.conftest import REPO_ROOT, save_tiny_checkpoint
from tools.crop import CropBox, apply_crop
from tools.video_io import read_frames

SAMPLE = REPO_ROOT / 'data' / 'samples' / 'head04.mp4'
T = 4


def tiny_config():
    with open(REPO_ROOT / 'config' / 'test-tiny.yaml') as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope='module')
def frames():
    clip, _ = read_frames(SAMPLE, range(T))
    return np.stack([apply_crop(frame, CropBox(0, 0, 256), 64) for frame in clip])


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp('sec') / 'tiny.pth')


@pytest.fixture(scope='module')
def coded(checkpoint, frames):
    return Encoder(checkpoint, qp=42).encode(frames, fps=30)


def marker_program(tmp_path, name='evil'):
    """An executable that only creates tmp_path/<name>.ran when it is run."""
    marker = tmp_path / f'{name}.ran'
    program = tmp_path / name
    program.write_text(f'#!/bin/sh\ntouch "{marker}"\nexit 1\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program, marker


def retag(data, **fields):
    stream = bitstream.parse(data)
    for key, value in fields.items():
        setattr(stream, key, value)
    return bitstream.pack(stream)


# -- 1. a checkpoint never names a program to run ------------------------------------------------------------------

def test_checkpoint_cannot_name_the_vtm_programs(tmp_path, frames, monkeypatch):
    program, marker = marker_program(tmp_path)
    config = tiny_config()
    config['codec_params']['vtm'] = {'encoder': str(program), 'decoder': str(program), 'cfg_dir': str(tmp_path)}
    hostile = save_tiny_checkpoint(tmp_path / 'hostile.pth', config=config)
    for name in ('VTM_ENCODER', 'VTM_DECODER', 'VTM_CFG_DIR'):
        monkeypatch.delenv(name, raising=False)
    with pytest.warns(UserWarning, match='ignoring codec_params.vtm'):
        encoder = Encoder(hostile)
    data = retag(encoder.encode(frames[:2], fps=30), key_codec='vtm')
    with pytest.warns(UserWarning, match='ignoring codec_params.vtm'):
        decoder = Decoder(hostile)
    with pytest.raises(vvc.VVCError, match='VTM_DECODER'):
        decoder.decode(data)
    with pytest.raises(vvc.VVCError, match='VTM_ENCODER'):
        encoder_vtm = Encoder(hostile, vvc='vtm')
        encoder_vtm.encode(frames[:1], fps=30)
    assert not marker.exists()
    # through the command line as well: a clean error, the program is not run
    src = tmp_path / 'vtm.s2d'
    src.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        code = cli.main(['decode', '--checkpoint', hostile, '--input', str(src), '--output', str(tmp_path / 'o.mp4')])
    assert code != 0 and not marker.exists()


def test_vtm_decode_needs_only_the_decoder(tmp_path, monkeypatch):
    for name in ('VTM_ENCODER', 'VTM_DECODER', 'VTM_CFG_DIR'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(vvc.VVCError, match='no decoder given; set the VTM_DECODER'):
        vvc.decode(b'\x00\x00\x01', 64, 64, backend='vtm')


def test_weights_id_covers_the_config(tmp_path, checkpoint, coded):
    config = tiny_config()
    config['model_params']['kp_detector_params']['temperature'] = 0.2    # same weights, other model
    other = save_tiny_checkpoint(tmp_path / 'other.pth', config=config)
    with pytest.raises(bitstream.BitstreamError, match='model weights'):
        Decoder(other).parse(coded)
    Decoder(checkpoint).parse(coded)


# -- 2. learned-metric weight files are data, not code -------------------------------------------------------------

class _TouchOnUnpickle:
    """Unpickling this (torch.load with weights_only=False) creates a marker file, nothing else."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.mark.parametrize('metric,filename', [('lpips_alex', 'alexnet-owt-7be5be79.pth'),
                                             ('lpips_vgg', 'vgg16-397923af.pth'),
                                             ('dists', 'dists_weights.pt')])
def test_hostile_metric_weights_are_not_unpickled(tmp_path, metric, filename):
    from evaluation.learned import build_learned_metric
    from evaluation.weights import Unavailable
    weights = tmp_path / 'weights'
    weights.mkdir()
    marker = tmp_path / 'unpickled.ran'
    for name in ('alexnet-owt-7be5be79.pth', 'vgg16-397923af.pth', 'dists_weights.pt'):
        torch.save({'payload': _TouchOnUnpickle(marker)}, weights / name)
    result = build_learned_metric(metric, 'cpu', weights_dir=weights)
    assert not marker.exists()
    assert isinstance(result, Unavailable) and 'weights_only=True' in result.reason


def test_i3d_torchscript_needs_the_pinned_sha256(tmp_path, monkeypatch):
    from evaluation import fvd
    from evaluation.weights import Unavailable
    script = torch.jit.script(torch.nn.Identity())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        script.save(str(tmp_path / 'i3d_torchscript.pt'))
    digest = fvd.file_sha256(tmp_path / 'i3d_torchscript.pt')
    monkeypatch.setattr(fvd, 'I3D_SHA256', None)
    result = fvd.build_i3d('cpu', weights_dir=tmp_path)
    assert isinstance(result, Unavailable) and 'I3D_SHA256' in result.reason
    monkeypatch.setattr(fvd, 'I3D_SHA256', '0' * 64)
    result = fvd.build_i3d('cpu', weights_dir=tmp_path)
    assert isinstance(result, Unavailable) and 'is refused' in result.reason and digest in result.reason
    monkeypatch.setattr(fvd, 'I3D_SHA256', digest)
    assert isinstance(fvd.build_i3d('cpu', weights_dir=tmp_path), fvd.I3DFeatures)
