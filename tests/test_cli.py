"""One command-line convention (issue 12 item 4): run.py spells its options as codec.py and tools/ do (``--device``,
hyphens) and keeps the old spellings as aliases; pyproject.toml installs the modules and the commands; the tools and
benchmarks run as modules from the repository root, without ``sys.path`` edits."""
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import run

REPO = Path(__file__).resolve().parents[1]


def test_new_and_old_spellings_parse_alike():
    new = run.parse_args(['--config', 'c.yaml', '--device', 'cpu,cpu', '--log-dir', 'L', '--weights-dir', 'W'])
    old = run.parse_args(['--config', 'c.yaml', '--device_ids', 'cpu,cpu', '--log_dir', 'L', '--weights_dir', 'W'])
    hyphen = run.parse_args(['--config', 'c.yaml', '--device-ids', 'cpu,cpu', '--log-dir', 'L', '--weights-dir', 'W'])
    assert vars(new) == vars(old) == vars(hyphen)
    assert (new.device, new.log_dir, new.weights_dir) == ('cpu,cpu', 'L', 'W')


def test_device_accepts_codec_spellings_and_names_the_option():
    assert run.parse_device_ids('cpu') == [torch.device('cpu')]
    assert run.parse_device_ids('cpu,cpu') == [torch.device('cpu')] * 2
    count = torch.cuda.device_count()
    for spelling in ('cuda', 'cuda:0', '0'):
        if count:
            assert run.parse_device_ids(spelling) == [torch.device('cuda', 0)]
        else:
            with pytest.raises(ValueError, match=f"--device {spelling}: CUDA device 0 does not exist"):
                run.parse_device_ids(spelling)
    with pytest.raises(ValueError, match="--device 'gpu'"):
        run.parse_device_ids('gpu')


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run.cli(['--config', str(tmp_path / 'missing.yaml')])
    assert str(info.value).startswith('error: config ') and 'does not exist' in str(info.value)


def test_pyproject_installs_every_module_and_command():
    project = tomllib.loads((REPO / 'pyproject.toml').read_text())
    setup = project['tool']['setuptools']
    top_level = {p.stem for p in REPO.glob('*.py')}
    assert set(setup['py-modules']) == top_level
    packages = {p.parent.name for p in REPO.glob('*/__init__.py') if p.parent.name != 'tests'}
    assert set(setup['packages']) == packages
    scripts = project['project']['scripts']
    assert scripts['s2d-codec'] == 'codec:main' and scripts['s2d-run'] == 'run:cli'
    for target in scripts.values():
        module, function = target.split(':')
        assert callable(getattr(importlib.import_module(module), function)), target
    listed = {line.split('#')[0].strip() for line in (REPO / 'requirements.txt').read_text().splitlines()}
    assert set(project['project']['dependencies']) | set(project['project']['optional-dependencies']['test']) \
        == listed - {''}


def test_scripts_and_modules_run_from_the_repository_root_without_path_edits():
    for path in [REPO / 'run.py', REPO / 'reconstruction.py', *REPO.glob('tools/*.py'), *REPO.glob('benchmarks/*.py')]:
        assert 'sys.path' not in path.read_text(), path
    helps = []
    for command in (['run.py', '--help'], ['-m', 'tools.export_checkpoint', '--help'],
                    ['-m', 'benchmarks.bench_model', '--help']):
        proc = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        helps.append(' '.join(proc.stdout.split()))
    assert '--device DEVICE, --device-ids DEVICE, --device_ids DEVICE' in helps[0]
    assert '--log-dir LOG_DIR' in helps[1] and '--train-iterations' in helps[2]
