"""Shared pytest fixtures: repository paths, the bundled real sample clips, the tiny config, one torch thread."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / 'data' / 'samples'


@pytest.fixture(autouse=True, scope='session')
def _one_torch_thread():
    """The test machine has two shared cores: keep torch to one intra-op thread."""
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def repo_root():
    """Repository root (Path)."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def samples_dir():
    """``data/samples``: bundled real clips (see data/samples/ATTRIBUTION.md), flat layout."""
    return SAMPLES_DIR


def sample_frames(name, count, size=64):
    """The first ``count`` frames of ``data/samples/<name>.mp4`` (256x256 real footage) resized to size x size:
    uint8 (count, size, size, 3)."""
    from tools.crop import CropBox, apply_crop
    from video_io import read_frames
    frames, _ = read_frames(SAMPLES_DIR / f'{name}.mp4', range(count))
    return np.stack([apply_crop(frame, CropBox(0, 0, 256), size) for frame in frames])


@pytest.fixture(scope='session')
def sample_video():
    """Path of the bundled talking-head clip (256x256, 60 frames, 30 fps, real footage)."""
    return SAMPLES_DIR / 'head04.mp4'


@pytest.fixture
def tiny_config():
    """config/test-tiny.yaml as a dict (loaded afresh per test), data root made absolute."""
    with open(REPO_ROOT / 'config' / 'test-tiny.yaml') as handle:
        config = yaml.safe_load(handle)
    config['dataset_params']['root_dir'] = str(REPO_ROOT / config['dataset_params']['root_dir'])
    return config


def save_tiny_checkpoint(path, seed=0, config=None):
    """Save randomly initialised networks of ``config`` (default config/test-tiny.yaml; seed ``seed``) in the
    checkpoint format of modules/build.py at ``path``; returns ``str(path)``."""
    from modules.build import build_networks
    if config is None:
        with open(REPO_ROOT / 'config' / 'test-tiny.yaml') as handle:
            config = yaml.safe_load(handle)
    torch.manual_seed(seed)
    nets = build_networks(config)
    torch.save({'config': config, 'epoch': 0, 'iteration': 0,
                **{name: net.state_dict() for name, net in nets.items()}}, path)
    return str(path)


@pytest.fixture(scope='session')
def tiny_checkpoint_factory():
    """``save_tiny_checkpoint(path, seed=0, config=None)``: tiny random-weight checkpoints on demand."""
    return save_tiny_checkpoint


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """Path of a checkpoint of randomly initialised config/test-tiny.yaml networks (seed 0)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp('tiny_checkpoint') / 'tiny.pth')


def dead_pid():
    """The PID of a process that has exited (to name a killed writer's leftovers)."""
    import subprocess
    import sys

    import tempfiles
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    assert not tempfiles.pid_alive(proc.pid)
    return proc.pid


def age(*paths):
    """Set the modification time of ``paths`` past tempfiles.STALE_AFTER_S (leftovers nobody touched for long)."""
    import os
    import time

    import tempfiles
    past = time.time() - tempfiles.STALE_AFTER_S - 60
    for path in paths:
        os.utime(path, (past, past))
