"""Model benchmark: parameters, inference time per frame, training speed and peak memory on this machine.

Usage::

    python -m benchmarks.bench_model [--configs config/humans256-cpu.yaml config/ted384.yaml] [--device cpu]
                                     [--repeats 3] [--train-iterations 5]

For every config (batch 1, random weights: speed does not depend on the values) it prints the parameters per
network, the encoder side (keypoint detector, per frame), the decoder side (keypoints + texture volume of the
key-reference frame once; then dense motion + generator + vertex head per frame), and, for configs whose
``train_params.perceptual_backbone`` is offline, training iterations per second at the config's batch size.
Each config runs in its own process so that the peak resident memory (ru_maxrss) printed is that config's alone.
"""
import argparse
import multiprocessing as mp
import os
import platform
import resource
import time

import torch
import yaml

from modules.build import build_networks
from modules.config import resolve_config
from modules.model import DiscriminatorFullModel, GeneratorFullModel
from modules.util import num_parameters


def timed(fn, repeats, device):
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_config(path, device, repeats, train_iterations, queue):
    """Measure one config; puts a dict of results on ``queue``."""
    with open(path) as f:
        config = resolve_config(yaml.safe_load(f), source=path)
    device = torch.device(device)
    torch.manual_seed(0)
    nets = build_networks(config)
    h, w = config['dataset_params']['frame_shape'][:2]
    row = {'config': os.path.basename(path), 'size': f'{h}x{w}'}
    row.update({f'params {k}': num_parameters(v) for k, v in nets.items()})
    for net in nets.values():
        net.to(device).eval()
    key, frame = torch.rand(1, 3, h, w, device=device), torch.rand(1, 3, h, w, device=device)
    with torch.no_grad():
        row['encoder kp_detector s/frame'] = timed(lambda: nets['kp_detector'](frame), repeats, device)
        kp_key = nets['kp_detector'](key)
        row['decoder key frame (kp + volume) s'] = timed(
            lambda: (nets['kp_detector'](key), nets['generator'].encode_source(key)), repeats, device)
        source_features = nets['generator'].encode_source(key)
        kp_frame = nets['kp_detector'](frame)
        row['decoder per frame (motion + generator + vertices) s/frame'] = timed(
            lambda: nets['vertex_head'](nets['generator'].render(source_features, kp_key, kp_frame)['F_refine']),
            repeats, device)
    tp = config['train_params']
    if train_iterations and tp['perceptual_backbone'] != 'vgg19':
        for net in nets.values():
            net.train()
        gen_model = GeneratorFullModel(nets['kp_detector'], nets['generator'], nets['vertex_head'],
                                       nets['discriminator'], tp).to(device)
        disc_model = DiscriminatorFullModel(nets['discriminator'], tp).to(device)
        b = tp['batch_size']
        n = config['model_params']['vertex_head_params']['num_vertices']
        batch = {'source': torch.rand(b, 3, h, w, device=device), 'driving': torch.rand(b, 3, h, w, device=device),
                 'vertices': torch.zeros(b, n, 2, device=device), 'vertex_confidence': torch.ones(b, n, device=device)}

        def step():
            losses, generated = gen_model(batch)
            sum(losses.values()).backward()
            sum(disc_model(batch, generated).values()).backward()

        row[f'train it/s (batch {b})'] = 1 / timed(step, train_iterations, device)
    row['peak RSS MB'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == 'cuda':
        row['peak CUDA MB'] = torch.cuda.max_memory_allocated() / 2 ** 20
    queue.put(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--configs', nargs='+', default=['config/humans256-cpu.yaml', 'config/ted384.yaml'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--train-iterations', type=int, default=5)
    args = parser.parse_args()
    print(f"# bench_model on {platform.node()} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}), {time.strftime('%Y-%m-%d %H:%M')}")
    ctx = mp.get_context('spawn')
    for path in args.configs:
        queue = ctx.Queue()
        proc = ctx.Process(target=bench_config, args=(path, args.device, args.repeats, args.train_iterations, queue))
        proc.start()
        row = queue.get()
        proc.join()
        print(f"\n## {row.pop('config')} ({row.pop('size')}, batch 1 for inference)")
        print('| measure | value |\n|---|---|')
        for k, v in row.items():
            print(f"| {k} | {v:,.3f} |" if isinstance(v, float) else f"| {k} | {v:,} |")


if __name__ == '__main__':
    main()
