"""Configs reject typos (issue 12 item 2): modules/config.py, used by build_networks, the losses, train and run.py."""
import copy
from pathlib import Path

import pytest
import torch

from modules.build import CheckpointError, build_networks, load_checkpoint, load_inference_models
from modules.config import SCHEMA, ConfigError, resolve_config
from modules.model import GeneratorFullModel
from run import load_config
from train import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / 'config').glob('*.yaml'))


def test_every_shipped_config_loads():
    assert len(CONFIGS) >= 4
    for path in CONFIGS:
        config = load_config(str(REPO_ROOT / path))
        resolved = resolve_config(config)
        for section in ('model_params', 'train_params'):
            assert set(resolved[section]) == set(SCHEMA[section]), path
        # what the file gives is kept, the defaults only fill in
        assert resolved['model_params']['generator_params']['warped_skips'] == \
            config['model_params']['generator_params']['warped_skips']


def test_resolve_fills_defaults_and_leaves_the_input_alone(tiny_config):
    del tiny_config['model_params']['generator_params']['warped_skips']
    del tiny_config['train_params']['gan_mode']
    assert 'seed' not in tiny_config['train_params']
    before = copy.deepcopy(tiny_config)
    resolved = resolve_config(tiny_config)
    assert tiny_config == before
    assert resolved['model_params']['generator_params']['warped_skips'] is False
    assert resolved['train_params']['seed'] == 0 and resolved['train_params']['gan_mode'] == 'hinge'
    assert resolved['model_params']['discriminator_params']['num_channels'] == 3
    assert resolved['dataset_params'] == tiny_config['dataset_params']


@pytest.mark.parametrize('section, typo, meant', [
    (('model_params', 'generator_params'), 'warped_skip', 'warped_skips'),
    (('model_params', 'common_params'), 'num_kps', 'num_kp'),
    (('model_params', 'kp_detector_params'), 'temprature', 'temperature'),
    (('model_params', 'dense_motion_params'), 'kernelsize', 'kernel_size'),
    (('model_params', 'vertex_head_params'), 'pool', 'pool_size'),
    (('model_params', 'discriminator_params'), 'scale', 'scales'),
    (('train_params',), 'batchsize', 'batch_size'),
    (('train_params', 'loss_weights'), 'perceptul', 'perceptual'),
    (('train_params', 'validation'), 'num_video', 'num_videos'),
])
def test_typo_names_key_section_and_valid_keys(tiny_config, section, typo, meant):
    node = tiny_config
    for key in section:
        node = node[key]
    node[typo] = 1
    with pytest.raises(ConfigError) as info:
        build_networks(tiny_config) if section[0] == 'model_params' else resolve_config(tiny_config)
    message = str(info.value)
    assert f"config section {'.'.join(section)}: unknown key '{typo}'" in message
    assert f"did you mean '{meant}'?" in message
    valid = SCHEMA[section[0]] if len(section) == 1 else SCHEMA[section[0]][section[1]]
    assert all(key in message for key in valid)


def test_typo_in_a_yaml_file_is_reported_by_load_config(tmp_path):
    text = (REPO_ROOT / 'config' / 'test-tiny.yaml').read_text()
    assert '    warped_skips: true' in text
    path = tmp_path / 'typo.yaml'
    path.write_text(text.replace('    warped_skips: true', '    warped_skip: true'))
    with pytest.raises(ConfigError, match=r"typo\.yaml: config section model_params.generator_params: "
                                          r"unknown key 'warped_skip' \(did you mean 'warped_skips'\?\)"):
        load_config(str(path))


def test_misspelled_section_and_missing_keys(tiny_config):
    tiny_config['trian_params'] = tiny_config.pop('train_params')
    with pytest.raises(ConfigError, match="unknown key 'trian_params' \\(did you mean 'train_params'\\?\\)"):
        resolve_config(tiny_config)
    config = copy.deepcopy(tiny_config)
    del config['trian_params']
    del config['model_params']['kp_detector_params']['temperature']
    with pytest.raises(ConfigError, match="kp_detector_params lacks the required key 'temperature'"):
        build_networks(config)
    config['model_params']['kp_detector_params']['temperature'] = 0.1
    del config['model_params']['vertex_head_params']
    with pytest.raises(ConfigError, match="model_params lacks its sub-section 'vertex_head_params'"):
        resolve_config(config)
    config['model_params']['generator_params'] = [1, 2]
    with pytest.raises(ConfigError, match="model_params.generator_params must be a mapping"):
        resolve_config(config)


def test_losses_and_trainer_reject_train_params_typos(tiny_config):
    nets = build_networks(tiny_config)
    tiny_config['train_params']['loss_weights']['vertx'] = 100
    with pytest.raises(ConfigError, match="unknown key 'vertx' \\(did you mean 'vertex'\\?\\)"):
        GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'], nets['discriminator'],
                           tiny_config['train_params'])
    with pytest.raises(ConfigError, match="train_params.loss_weights: unknown key 'vertx'"):
        Trainer(tiny_config, 'cpu')
    del tiny_config['train_params']
    with pytest.raises(ConfigError, match='no train_params section'):
        Trainer(tiny_config, 'cpu')


def test_shipped_checkpoints_load_and_a_stored_typo_is_refused(tmp_path):
    for path in sorted((REPO_ROOT / 'checkpoints').glob('*.pth')):
        models = load_inference_models(str(path))
        assert models.generator.warped_skips is True and len(models.weights_id) == 8
    ckpt = load_checkpoint(str(REPO_ROOT / 'checkpoints' / 'humans256-cpu.pth'))
    ckpt['config']['model_params']['generator_params']['blend_warped_sorce'] = True
    bad = tmp_path / 'typo.pth'
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="unknown key 'blend_warped_sorce' \\(did you mean "
                                              "'blend_warped_source'\\?\\)"):
        load_inference_models(str(bad))


def test_the_one_checkpoint_loader_checks_what_the_caller_requires(tmp_path):
    import logger
    ckpt = load_checkpoint(str(REPO_ROOT / 'checkpoints' / 'humans256-cpu.pth'))
    ckpt['epoch'] = 'last'                              # resuming needs an int
    del ckpt['vertex_head']
    bad = tmp_path / 'partial.pth'
    torch.save(ckpt, bad)
    assert load_checkpoint(bad, require=('generator',))['epoch'] == 'last'
    for load, missing in ((lambda: load_checkpoint(bad, require=('epoch', 'vertex_head')), "['epoch', 'vertex_head']"),
                          (lambda: logger.load_checkpoint(bad), "['epoch', 'vertex_head']"),
                          (lambda: load_inference_models(str(bad)), "['vertex_head']")):
        with pytest.raises(CheckpointError) as error:
            load()
        assert str(error.value).startswith(f'{bad}: not a Sparse2Dense checkpoint: missing {missing}; give a ')


def test_yaml_default_and_explicit_value_build_the_same_network(tiny_config):
    explicit = copy.deepcopy(tiny_config)
    explicit['model_params']['dense_motion_params']['kernel_size'] = 7
    del tiny_config['model_params']['dense_motion_params']['kernel_size']
    torch.manual_seed(0)
    implicit_nets = build_networks(tiny_config)
    torch.manual_seed(0)
    explicit_nets = build_networks(explicit)
    a, b = implicit_nets['generator'].state_dict(), explicit_nets['generator'].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert implicit_nets['generator'].dense_motion.mask.kernel_size == (7, 7, 7)
