"""Quality metrics on real frames (data/samples/head04.mp4): best score for identical input, monotonic under
growing blur / noise, MS-SSIM window rule, unavailable learned metrics reported with the file they need, and the
weight loading path (from --weights-dir, no network) with locally made weight files."""
import socket
import warnings
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torchvision

from evaluation import fvd as fvd_module
from evaluation.learned import build_learned_metric
from evaluation.metrics import MetricSuite, frames_to_tensor, ms_ssim_kernel
from evaluation.weights import Unavailable

SAMPLE = Path(__file__).resolve().parents[1] / 'data' / 'samples' / 'head04.mp4'


@pytest.fixture(scope='module')
def frames():
    torch.set_num_threads(1)
    return iio.imread(SAMPLE, plugin='pyav')[:8]          # (8, 256, 256, 3) uint8, real talking-head frames


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any socket connection fails the test; torch hub cache points at an empty directory."""
    def refuse(*args, **kwargs):
        raise AssertionError('a metric tried to use the network')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'empty-hub'))   # restored as it was, $TORCH_HOME too
    yield


def _blur(frames, sigma):
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def _noise(frames, std, seed=0):
    noise = np.random.default_rng(seed).normal(0, std, frames.shape)
    return np.clip(frames.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def test_identical_frames_give_the_best_score(frames, no_network):
    suite = MetricSuite(['psnr', 'psnr_yuv', 'ssim', 'ms_ssim', 'vmaf'])
    same = suite.sequence(frames, frames.copy())
    assert same['psnr'] == pytest.approx(100.0) and same['psnr_yuv'] == pytest.approx(100.0)
    assert same['ssim'] == pytest.approx(1.0, abs=1e-5) and same['ms_ssim'] == pytest.approx(1.0, abs=1e-5)
    slightly = suite.sequence(frames, _noise(frames, 2.0))
    for name in same:
        assert same[name] > slightly[name], name
    assert same['vmaf'] > 95


@pytest.mark.parametrize('distort,strengths', [(_blur, (0.7, 1.5, 3.0)), (_noise, (3.0, 8.0, 20.0))])
def test_growing_real_distortion_gives_monotonically_worse_scores(frames, no_network, distort, strengths):
    suite = MetricSuite(['psnr', 'psnr_yuv', 'ssim', 'ms_ssim', 'vmaf'])
    scores = [suite.sequence(frames, distort(frames, s)) for s in strengths]
    for name in ('psnr', 'psnr_yuv', 'ssim', 'ms_ssim', 'vmaf'):
        values = [s[name] for s in scores]
        assert values[0] > values[1] > values[2], (name, values)


def test_ms_ssim_window_adapts_to_small_frames_and_rejects_tiny_ones(frames):
    assert ms_ssim_kernel(256, 256) == 11
    assert ms_ssim_kernel(64, 64) == 3
    with pytest.raises(ValueError, match='at least 33 px'):
        ms_ssim_kernel(32, 32)
    small = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    suite = MetricSuite(['ms_ssim'])
    assert suite.sequence(small, small)['ms_ssim'] == pytest.approx(1.0, abs=1e-5)
    assert suite.sequence(small, _blur(small, 1.5))['ms_ssim'] < 0.99


def test_missing_weights_make_learned_metrics_unavailable_with_the_needed_file(frames, no_network, tmp_path):
    suite = MetricSuite(['psnr', 'lpips_alex', 'lpips_vgg', 'dists', 'fvd'], weights_dir=tmp_path / 'weights')
    assert suite.available == ['psnr']
    needed = {'lpips_alex': 'alexnet-owt-7be5be79.pth', 'lpips_vgg': 'vgg16-397923af.pth',
              'dists': 'dists_weights.pt', 'fvd': 'i3d_torchscript.pt'}
    for name, filename in needed.items():
        report = suite.unavailable[name]
        assert isinstance(report, Unavailable) and filename in report.missing
        assert filename in str(report) and str(tmp_path / 'weights') in str(report)
    assert set(suite.sequence(frames, frames)) == {'psnr'}          # never a number for an unavailable metric
    assert suite.fvd_features(frames) is None
    assert any('lpips_alex: unavailable' in line for line in suite.protocol())


def test_lpips_loads_its_trunk_from_weights_dir_without_network(frames, no_network, tmp_path):
    # The real ImageNet weights cannot be fetched here: a randomly initialised AlexNet saved under torchvision's
    # filename exercises the same loading path (file lookup, no download, trunk filled from the file).
    trunk = torchvision.models.alexnet().state_dict()
    torch.save(trunk, tmp_path / 'alexnet-owt-7be5be79.pth')
    metric = build_learned_metric('lpips_alex', 'cpu', weights_dir=tmp_path)
    assert not isinstance(metric, Unavailable)
    assert torch.equal(metric.network.net.slice1[0].weight, trunk['features.0.weight'])
    x = frames_to_tensor(frames[:2])
    y = frames_to_tensor(_noise(frames[:2], 20.0))
    assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-6)
    assert (metric(x, y) > 0).all()


class _StandInI3D(torch.nn.Module):
    """Test double with the I3D TorchScript call convention; checks the clip protocol and returns 400 features."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        assert x.shape[1:] == (3, 16, 224, 224)
        assert not rescale and not resize and return_features
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
        return x.mean(dim=(3, 4)).reshape(x.shape[0], 48).repeat(1, 9)[:, :400]


def test_fvd_clip_protocol_and_frechet_distance(frames, no_network, tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)            # TorchScript is deprecated but is the format
        torch.jit.script(_StandInI3D()).save(str(tmp_path / 'i3d_torchscript.pt'))
    monkeypatch.setattr(fvd_module, 'I3D_SHA256', fvd_module.file_sha256(tmp_path / 'i3d_torchscript.pt'))
    suite = MetricSuite(['fvd'], weights_dir=tmp_path, fvd_stride=8)
    video = np.concatenate([frames] * 4)                        # 32 frames -> clips at 0, 8, 16
    features = suite.fvd_features(video)
    assert features.shape == (3, 400)
    with pytest.raises(ValueError, match='at least 16 frames'):
        suite.fvd_features(frames)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 6))
    assert fvd_module.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, 2.0, 0, 0, 0, 0])
    assert fvd_module.frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-6)
    assert fvd_module.clip_starts(40, 16, 16) == [0, 16]
