"""tools/ablate.py: overrides, a real two-variant ablation of the tiny model on the bundled clips, its report."""
from pathlib import Path

import pytest
import yaml

from modules.build import build_networks
from modules.config import resolve_config
from tools.ablate import _row, apply_overrides, load_ablations, main, report, variant_config


def test_overrides_set_nested_keys_and_reject_typos(tiny_config):
    config = apply_overrides(tiny_config, {'train_params.loss_weights.vertex': 0, 'train_params.seed': 3})
    assert config['train_params']['loss_weights']['vertex'] == 0 and config['train_params']['seed'] == 3
    assert tiny_config['train_params']['loss_weights']['vertex'] == 100  # the input is not modified
    with pytest.raises(KeyError, match="section 'trian_params' does not exist"):
        apply_overrides(tiny_config, {'trian_params.seed': 1})


def test_two_variants_train_with_the_same_budget_and_are_reported(tiny_config, tmp_path):
    tiny_config['dataset_params']['validation_names'] = ['head04']  # held out: full01 trains, head04 validates
    base = tmp_path / 'tiny.yaml'
    base.write_text(yaml.safe_dump(tiny_config))
    ablations = tmp_path / 'tiny-ablation.yaml'
    ablations.write_text(yaml.safe_dump({
        'base': str(base), 'budget': {'num_epochs': 1, 'num_repeats': 2},
        'variants': {'baseline': {}, 'no_prior': {'train_params.loss_weights.keypoint_prior': 0}, 'later': {}}}))
    log_dir = tmp_path / 'runs'
    for variant in ('baseline', 'no_prior'):
        assert main(['run', str(ablations), '--variant', variant, '--log-dir', str(log_dir)]) == 0
    out = tmp_path / 'TRAINING.md'
    text = report(str(ablations), str(log_dir), str(out), motion_frames=12)
    assert out.read_text() == text
    training_part, motion_part = text.split('Motion on the 1 validation clips (head04)')
    rows = {line.split('|')[1].strip(): line for line in training_part.splitlines() if line.startswith('| ')}
    motion = {line.split('|')[1].strip(): line for line in motion_part.splitlines() if line.startswith('| ')}
    assert len(rows) == 1 + 3 and len(motion) == 1 + 3  # headers + 3 variants; headers + frozen + 2 trained
    for variant in ('baseline', 'no_prior'):
        cells = [c.strip() for c in rows[variant].split('|')[1:-1]]
        assert cells[2] == '1'  # iterations: 1 training clip x 2 repeats / batch 2, the same budget for both
        assert cells[3] == '0.00' and 0 < _row(variant, log_dir / 'tiny-ablation' / variant)['hours'] < 0.1
        assert float(cells[5]) > 0 and float(cells[6]) > 0  # validation PSNR and frozen PSNR were measured
    assert 'not run' in rows['later']
    frozen = [c.strip() for c in motion['frozen key frame'].split('|')[1:-1]]
    assert frozen[4] == '0.00' and frozen[5] == '0.00'  # the frozen key frame's mouth: no correlation, still
    assert float(frozen[2]) > 0  # its face-landmark error: head04 moves
    for variant in ('baseline', 'no_prior'):
        cells = [c.strip() for c in motion[variant].split('|')[1:-1]]
        assert 0 < float(cells[1]) <= 1  # MS-SSIM of the rendered frames
        assert float(cells[5]) > 0  # the rendered mouth moves (head04 talks)
    assert main(['run', str(ablations), '--variant', 'missing', '--log-dir', str(log_dir)]) == 2


ABLATION_FILES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / 'config' / 'ablations').glob('*.yaml'))


@pytest.mark.parametrize('name', ABLATION_FILES)
def test_shipped_ablation_files_describe_valid_networks(name, repo_root, monkeypatch):
    """Every variant of every committed ablation file resolves against the config schema (a misspelled override
    fails here, not an hour into a run) and builds its networks; the parent checkpoint exists."""
    monkeypatch.chdir(repo_root)   # the files name their base config and parent relative to the repository
    path = Path('config/ablations') / name
    spec = load_ablations(path)
    assert spec['parent'] is None or Path(spec['parent']).is_file()
    assert spec['variants']
    for variant in spec['variants']:
        config = resolve_config(variant_config(spec, variant), source=f'{path}:{variant}')
        networks = build_networks(config)
        assert networks['kp_detector'].scale_factor == config['model_params']['kp_detector_params']['scale_factor']
