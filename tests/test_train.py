"""Training on the bundled real clips with config/test-tiny.yaml: overfitting, DDP, checkpoints, resume, fine-tune."""
import copy
import math

import pytest
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler

import run
from logger import CHECKPOINT_NETWORKS, load_checkpoint, save_checkpoint
from modules.build import build_networks, load_inference_models
from train import Trainer, make_datasets

OVERFIT_ITERATIONS = 60
OVERFIT_MAX_RATIO = 0.7  # measured 0.51 (validation L1 0.290 -> 0.147 after 60 iterations, seed 0)


def test_overfit_lowers_reconstruction_l1(tiny_config):
    tiny_config['train_params']['num_repeats'] = 100
    torch.manual_seed(0)
    trainer = Trainer(tiny_config, 'cpu')
    train_set, test_set = make_datasets(tiny_config)
    before = trainer.validate(test_set, num_videos=2, num_frames=8)
    batches = iter(DataLoader(train_set, batch_size=2, shuffle=True))
    for _ in range(OVERFIT_ITERATIONS):
        losses, _ = trainer.step(next(batches))
        assert all(math.isfinite(v) for v in losses.values())
    after = trainer.validate(test_set, num_videos=2, num_frames=8)
    ratio = after['l1'] / before['l1']
    print(f"validation L1 {before['l1']:.4f} -> {after['l1']:.4f} (ratio {ratio:.3f}), "
          f"PSNR {before['psnr']:.2f} -> {after['psnr']:.2f} dB")
    assert ratio < OVERFIT_MAX_RATIO
    assert after['psnr'] > before['psnr'] + 2.0


def _ddp_worker(rank, world_size, device, config, out_dir):
    """One DDP training step per process on its own shard of the data; saves parameters and losses."""
    from train import setup_distributed
    torch.set_num_threads(1)
    setup_distributed(rank, world_size, device)
    torch.manual_seed(rank)  # different initialisations: DDP must start every rank from rank 0's weights
    own = {name: dict(net.named_parameters()) for name, net in build_networks(config).items()}
    torch.manual_seed(rank)
    trainer = Trainer(config, device, distributed=True)
    initial = {name: {k: v.detach().clone() for k, v in net.named_parameters()}
               for name, net in trainer.networks.items()}
    train_set, _ = make_datasets(config)
    sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=0)
    losses, _ = trainer.step(next(iter(DataLoader(train_set, batch_size=1, sampler=sampler))))
    params = {name: {k: v.detach().clone() for k, v in net.named_parameters()}
              for name, net in trainer.networks.items()}
    torch.save({'own': own, 'initial': initial, 'params': params, 'losses': losses}, out_dir / f'rank{rank}.pt')
    dist.destroy_process_group()


def test_ddp_gloo_step_keeps_ranks_identical(tiny_config, tmp_path):
    run.launch(_ddp_worker, run.parse_device_ids('cpu,cpu'), config=tiny_config, out_dir=tmp_path)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in range(2)]
    assert ranks[0]['losses'] != ranks[1]['losses']  # different data and random warps per rank
    changed = 0
    for name in CHECKPOINT_NETWORKS:
        for key, value in ranks[0]['params'][name].items():
            assert torch.equal(value, ranks[1]['params'][name][key]), f'{name}.{key} differs across ranks'
            changed += not torch.equal(value, ranks[0]['initial'][name][key])
    assert changed > 10
    # the ranks built different weights; DDP replaced rank 1's by rank 0's before the step
    assert not torch.equal(ranks[0]['own']['generator']['final.weight'], ranks[1]['own']['generator']['final.weight'])
    for name in CHECKPOINT_NETWORKS:
        for key, value in ranks[1]['initial'][name].items():
            assert torch.equal(value, ranks[0]['own'][name][key]), f'{name}.{key}'


def test_checkpoint_round_trip(tiny_config, tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config, 'cpu')
    train_set, _ = make_datasets(tiny_config)
    trainer.step(next(iter(DataLoader(train_set, batch_size=2))))
    path = tmp_path / 'checkpoint.pth'
    save_checkpoint(path, trainer.checkpoint(epoch=3, iteration=7, validation={'l1': 0.25}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['checkpoint.pth']  # no temporary file left
    checkpoint = load_checkpoint(path)
    assert checkpoint['epoch'] == 3 and checkpoint['iteration'] == 7 and checkpoint['config'] == tiny_config
    torch.manual_seed(1)
    restored = Trainer(tiny_config, 'cpu')
    restored.resume(checkpoint)
    for name in CHECKPOINT_NETWORKS:
        for key, value in trainer.networks[name].state_dict().items():
            assert torch.equal(value, restored.networks[name].state_dict()[key]), f'{name}.{key}'
    for name, optimizer in trainer.optimizers.items():
        steps = [s['step'] for s in restored.optimizers[name].state_dict()['state'].values()]
        assert steps and all(float(s) == 1 for s in steps)
    # the schedules continue after epoch 3, past milestone 1: lr 2e-4 * 0.1
    assert all(math.isclose(lr, 2e-5) for lr in restored.learning_rates().values())
    models = load_inference_models(str(path), 'cpu')
    assert torch.equal(models.generator.state_dict()['final.weight'],
                       trainer.networks['generator'].state_dict()['final.weight'])
    with pytest.raises(ValueError, match='not a Sparse2Dense checkpoint'):
        torch.save({'weights': torch.zeros(1)}, tmp_path / 'other.pth')
        load_checkpoint(tmp_path / 'other.pth')


def _write_config(config, path):
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_resume_continues_at_next_epoch_and_fine_tune_reports_mismatches(tiny_config, tmp_path):
    tiny_config['train_params']['num_epochs'] = 1
    first = _write_config(tiny_config, tmp_path / 'tiny.yaml')
    run.main(['--config', first, '--mode', 'train', '--log_dir', str(tmp_path / 'log'), '--device_ids', 'cpu'])
    (run_dir,) = (tmp_path / 'log').iterdir()
    assert run_dir.name.startswith('tiny_') and ' ' not in run_dir.name
    checkpoint = load_checkpoint(run_dir / 'checkpoint.pth')
    assert checkpoint['epoch'] == 0 and checkpoint['iteration'] == 2 and checkpoint['train_seconds'] > 0
    assert (run_dir / 'best.pth').exists() and (run_dir / 'vis' / 'epoch_0000.png').exists()
    assert yaml.safe_load((run_dir / 'config.yaml').read_text()) == tiny_config
    assert any(p.name.startswith('events.out.tfevents') for p in run_dir.iterdir())

    # resume: same config with more epochs -> same folder, next epoch, learning rate past milestone 1
    tiny_config['train_params']['num_epochs'] = 2
    longer = _write_config(tiny_config, tmp_path / 'tiny_longer.yaml')
    run.main(['--config', longer, '--checkpoint', str(run_dir / 'checkpoint.pth'), '--log_dir',
              str(tmp_path / 'log'), '--device_ids', 'cpu'])
    assert [p.name for p in (tmp_path / 'log').iterdir()] == [run_dir.name]
    resumed = load_checkpoint(run_dir / 'checkpoint.pth')
    assert resumed['epoch'] == 1 and resumed['iteration'] == 4
    assert resumed['train_seconds'] > checkpoint['train_seconds']  # summed over both sittings, idle time not counted
    assert math.isclose(resumed['optimizer_generator']['param_groups'][0]['lr'], 2e-5)
    epochs = [line.split()[1] for line in (run_dir / 'log.txt').read_text().splitlines()]
    assert epochs == ['0000', '0001']

    # fine-tune: a different vertex count -> new folder, report of the shape mismatch, fresh optimizers
    tiny_config['model_params']['vertex_head_params']['num_vertices'] = 68
    tiny_config['train_params']['loss_weights']['keypoint_guidance'] = 0  # its landmarks index the 543 layout
    tiny_config['train_params']['num_epochs'] = 1
    other = _write_config(tiny_config, tmp_path / 'tiny68.yaml')
    run.main(['--config', other, '--checkpoint', str(run_dir / 'checkpoint.pth'), '--log_dir',
              str(tmp_path / 'log'), '--device_ids', 'cpu'])
    (tuned_dir,) = [p for p in (tmp_path / 'log').iterdir() if p.name.startswith('tiny68_')]
    log = (tuned_dir / 'log.txt').read_text()
    assert 'vertex_head.fc.weight: shape mismatch, checkpoint (1086, ' in log
    assert 'vertex_head.fc.bias: shape mismatch, checkpoint (1086,) vs model (136,)' in log
    assert 'generator: loaded' in log and 'shape mismatch' not in log.split('vertex_head:')[0]
    tuned = load_checkpoint(tuned_dir / 'checkpoint.pth')
    assert tuned['epoch'] == 0 and tuned['vertex_head']['fc.bias'].shape == (136,)
    steps = [float(s['step']) for s in tuned['optimizer_generator']['state'].values()]
    assert steps and max(steps) == 2  # fresh optimizer: only this run's 2 iterations


def test_fine_tune_loads_matching_weights(tiny_config):
    torch.manual_seed(0)
    source = Trainer(tiny_config, 'cpu').checkpoint(epoch=0, iteration=0)
    tiny_config['model_params']['vertex_head_params']['num_vertices'] = 68
    tiny_config['train_params']['loss_weights']['keypoint_guidance'] = 0  # its landmarks index the 543 layout
    torch.manual_seed(1)
    target = Trainer(tiny_config, 'cpu')
    lines = target.fine_tune_from(source)
    assert any('fc.weight: shape mismatch' in line for line in lines)
    for name in ('kp_detector', 'generator', 'discriminator'):
        for key, value in source[name].items():
            assert torch.equal(target.networks[name].state_dict()[key], value), f'{name}.{key}'
    assert torch.equal(target.networks['vertex_head'].state_dict()['project.2.weight'],
                       source['vertex_head']['project.2.weight'])


def test_resume_ignores_settings_that_do_not_change_training(tiny_config):
    from train import is_resume
    changed = copy.deepcopy(tiny_config)
    changed['train_params']['num_epochs'] += 5
    changed['train_params']['dataloader_workers'] = 3
    changed['dataset_params']['cache_frames'] = True
    changed['codec_params'] = {'kp_step': 0.02}
    changed['rd_params'] = {'num_frames': 10}
    assert is_resume(changed, tiny_config)
    changed['train_params']['loss_weights']['vertex'] = 0
    assert not is_resume(changed, tiny_config)
