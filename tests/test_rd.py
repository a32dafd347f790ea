"""The RD pipeline end to end on one real clip (data/samples/head04.mp4), two QPs, four frames, the tiny model
(randomly initialised, saved as a checkpoint): every output written, bits from the real files, a second run
served from the cache, an interrupted run resumed; the vertices and reconstruction modes; vertex accuracy."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

import run
import evaluation.rd as rd_module
from evaluation.rd import RDEvaluation, run_vertices
from evaluation.vertices import to_pixels, vertex_accuracy
from reconstruction import run_reconstruction

FRAMES = 4
NUM_VERTICES = 543


@pytest.fixture
def rd_setup(tmp_path, tiny_config, sample_video, tiny_checkpoint_factory):
    data = tmp_path / 'data'
    (data / 'vertices').mkdir(parents=True)
    shutil.copy(sample_video, data / 'head04.mp4')
    # teacher labels for the 60-frame clip: vertices in [-0.8, 0.8], every other vertex confident
    rng = np.random.default_rng(0)
    confidence = np.zeros((60, NUM_VERTICES), np.float32)
    confidence[:, ::2] = 0.9
    np.savez(data / 'vertices' / 'head04.npz', vertices=rng.uniform(-0.8, 0.8, (60, NUM_VERTICES, 2)).astype(
        np.float32), confidence=confidence, teacher='test', layout='holistic-543')
    checkpoint = tiny_checkpoint_factory(tmp_path / 'tiny.pth', config=tiny_config)
    tiny_config['rd_params'] = dict(root_dir=str(data), num_frames=FRAMES, fps=25, key_qps=[32, 42],
                                    anchor_qps=[37, 47], vvc_backend='vvenc',
                                    metrics=['psnr', 'ms_ssim', 'vmaf', 'lpips_alex', 'fvd', 'motion'])
    return tiny_config, checkpoint, tmp_path / 'out'


def _rows(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def _without_timing(row):
    return {k: v for k, v in row.items() if not k.endswith('_ms_per_frame')}


def test_rd_pipeline_end_to_end_with_cache(rd_setup, tmp_path, capsys, monkeypatch):
    config, checkpoint, out = rd_setup
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'empty-hub'))   # no learned-metric weights here
    first = RDEvaluation(config, checkpoint, out).run()
    assert (first['computed'], first['cached']) == (7, 0)          # reconstruction + 2 s2d + 2 frozen + 2 anchor
    rows = _rows(out / 'results.csv')
    assert sorted((r['codec'], r['qp']) for r in rows) == [
        ('anchor', '37'), ('anchor', '47'), ('frozen', '32'), ('frozen', '42'), ('reconstruction', ''),
        ('s2d', '32'), ('s2d', '42')]
    for row in rows:
        assert row['sequence'] == 'head04' and int(row['frames']) == FRAMES
        assert 0 < float(row['ms_ssim']) <= 1 and float(row['psnr']) > 0 and 0 <= float(row['vmaf']) <= 100
        assert 'lpips_alex' not in row and 'fvd' not in row           # unavailable: never a number
        if row['codec'] == 'reconstruction':
            assert row['bits'] == ''
            continue
        bits = int(row['bits'])
        suffix = '.s2d' if row['codec'] == 's2d' else '.266'
        assert row['bitstream'].endswith(suffix) and bits == 8 * (out / row['bitstream']).stat().st_size
        assert float(row['kbps']) == pytest.approx(bits * 25 / FRAMES / 1000)
        assert float(row['kbps_native']) == pytest.approx(bits * 30 / FRAMES / 1000)
        # motion fidelity on every point (the teacher finds the face even at 64x64)
        assert int(row['frames_no_face_original']) == 0 and 0 <= int(row['frames_no_face_decoded']) <= FRAMES
        if row['codec'] == 'frozen':     # the no-motion baseline: constant decoded series
            assert float(row['mouth_corr']) == float(row['yaw_corr']) == 0.0
            assert float(row['face_speed_decoded_px_s']) == 0 and float(row['face_error_px']) > 0
    by_point = {(r['codec'], r['qp']): r for r in rows}
    # the VVC anchor at its best QP moves with the original: smaller face error, positive mouth correlation
    assert float(by_point[('anchor', '37')]['face_error_px']) < float(by_point[('frozen', '32')]['face_error_px'])
    assert float(by_point[('anchor', '37')]['mouth_corr']) > 0.5
    assert float(by_point[('anchor', '37')]['bits']) > float(by_point[('anchor', '47')]['bits'])
    # the s2d stream holds the key frame coded exactly as the frozen baseline, plus keypoints
    assert int(by_point[('s2d', '32')]['bits']) > int(by_point[('frozen', '32')]['bits'])
    for point in (('s2d', '32'), ('reconstruction', '')):
        assert int(by_point[point]['labelled_vertices']) == FRAMES * len(range(0, NUM_VERTICES, 2))
        assert float(by_point[point]['vertex_error_px']) > 0

    summary = (out / 'summary.md').read_text()
    for text in ('BD-rate against the VVC anchor', 'Sparse2Dense', 'Frozen key frame', 'VVenC', 'Motion fidelity',
                 '| 0 / 0 |',
                 'alexnet-owt-7be5be79.pth', 'i3d_torchscript.pt', 'forced 25 fps'):
        assert text in summary, text
    data = json.loads((out / 'summary.json').read_text())
    assert 'motion' not in data['metrics'] and 'motion' not in data['bd_rate']['s2d']     # not a BD-rate metric
    assert list((out / 'cache' / 'reference').glob('head04_*.holistic.npz'))
    for curve in ('s2d', 'frozen'):
        for metric in ('psnr', 'ms_ssim', 'vmaf'):
            entry = data['bd_rate'][curve][metric]
            assert (entry['value'] is None) == bool(entry['reason'])
    for metric in ('psnr', 'ms_ssim', 'vmaf'):
        assert (out / 'plots' / f'rd_{metric}.png').stat().st_size > 1000
    assert list((out / 'tensorboard').glob('events.out.tfevents.*'))

    results = (out / 'results.csv').read_text()
    second = RDEvaluation(config, checkpoint, out).run()
    assert (second['computed'], second['cached']) == (0, 7)
    assert (out / 'results.csv').read_text() == results

    (out / 'cache' / 'anchor' / 'head04_qp47.json').unlink()        # an interrupted run resumes
    third = RDEvaluation(config, checkpoint, out).run()
    assert (third['computed'], third['cached']) == (1, 6)
    assert [_without_timing(r) for r in _rows(out / 'results.csv')] == [_without_timing(r) for r in rows]

    config_file = tmp_path / 'rd.yaml'
    config_file.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    run.main(['--mode', 'rd', '--config', str(config_file), '--checkpoint', str(checkpoint), '--out', str(out),
              '--device_ids', 'cpu'])
    assert '0 points computed, 7 from the cache' in capsys.readouterr().out

    monkeypatch.setattr(rd_module, 'REFINE_VERSION', rd_module.REFINE_VERSION + 1)   # a changed keypoint search
    changed = RDEvaluation(config, checkpoint, out).run()
    assert (changed['computed'], changed['cached']) == (2, 5)      # recodes the s2d points, serves the others

    vertex_rows = run_vertices(config, checkpoint, out)            # served from the same cache
    assert {r['codec'] for r in vertex_rows} == {'reconstruction', 's2d'}
    assert list((out / 'vertices').glob('overlay_head04_qp*.mp4'))
    assert (out / 'vertices' / 'vertices.csv').is_file()

    recon = run_reconstruction(config, checkpoint, out)
    assert recon[0]['video'] == 'head04' and recon[0]['frames'] == FRAMES
    assert (out / 'reconstruction' / 'head04.mp4').stat().st_size > 0
    assert (out / 'reconstruction' / 'metrics.csv').is_file()
    from PIL import Image
    assert Image.open(out / 'reconstruction' / 'head04.png').size == (64 * FRAMES, 64)


def test_vertex_accuracy_in_pixels_on_confident_labels_only():
    height, width = 128, 256
    teacher = np.zeros((2, 4, 2), np.float32)
    offsets_px = np.array([3.0, 8.0, 12.0, 500.0])                 # last one has low confidence: ignored
    predicted = teacher.copy()
    predicted[..., 0] = offsets_px / ((width - 1) / 2)              # x offsets in normalized units
    confidence = np.array([[1.0, 0.9, 0.6, 0.1]] * 2, np.float32)
    result = vertex_accuracy(predicted, teacher, confidence, height, width, min_confidence=0.5)
    assert result['labelled_vertices'] == 6
    assert result['vertex_error_px'] == pytest.approx((3 + 8 + 12) / 3, rel=1e-5)
    assert result['pck5'] == pytest.approx(1 / 3) and result['pck10'] == pytest.approx(2 / 3)
    np.testing.assert_allclose(to_pixels(np.array([[-1.0, 1.0]]), height, width), [[0.0, height - 1]])
    assert vertex_accuracy(predicted, teacher, confidence * 0, height, width)['vertex_error_px'] is None
    with pytest.raises(ValueError, match='num_vertices'):
        vertex_accuracy(predicted[:, :3], teacher, confidence, height, width)


def test_refresh_threshold_sweep_takes_the_pareto_front(rd_setup):
    """Sweeping the refresh threshold with the key QP: one s2d point per (QP, threshold), more key frames (bits) at
    0 dB, and BD-rates computed on each clip's Pareto front (the summary states the overlap rule)."""
    config, checkpoint, out = rd_setup
    config['rd_params'].update(num_frames=6, key_qps=[42, 52], refresh_thresholds=[None, 0.0], metrics=['psnr'])
    result = RDEvaluation(config, checkpoint, out, codecs=('s2d', 'anchor')).run()
    rows = [r for r in _rows(out / 'results.csv') if r['codec'] == 's2d']
    assert sorted((r['qp'], r['refresh_threshold']) for r in rows) == [('42', ''), ('42', '0.0'), ('52', ''),
                                                                       ('52', '0.0')]
    by_point = {(r['qp'], r['refresh_threshold']): r for r in rows}
    assert int(by_point[('42', '0.0')]['bits']) > int(by_point[('42', '')]['bits'])      # refreshes cost key frames
    curve = result['summary']['curves']['s2d']
    assert curve['pareto'] and 'Pareto front' in curve['label']
    from evaluation.rd import _operating_points
    front = _operating_points(curve['points'], 'psnr', True)
    assert all(a['kbps'] < b['kbps'] and a['psnr'] < b['psnr'] for a, b in zip(front, front[1:]))
    assert set(map(id, front)) <= set(map(id, curve['points']))
    summary = (out / 'summary.md').read_text()
    assert 'overlap rule' in summary and '42, refresh 0 dB' in summary
