"""``codec.py demo`` end to end on the bundled real clip with a tiny random model."""
import json

import numpy as np

import codec as cli
from video_io import read_frames


def test_demo_writes_every_output_and_reports_real_numbers(tiny_checkpoint, sample_video, tmp_path, capsys):
    out = tmp_path / 'demo'
    assert cli.main(['demo', '--checkpoint', tiny_checkpoint, '--input', str(sample_video), '--frames', '6',
                     '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ('demo.s2d', 'decoded.mp4', 'side_by_side.mp4', 'vertices.mp4', 'vertices.npz', 'keypoints.png',
                 'report.json'):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / 'report.json').read_text())
    s2d = report['results']['sparse2dense']
    assert s2d['bits'] == 8 * (out / 'demo.s2d').stat().st_size
    assert abs(s2d['kbps'] - s2d['bits'] / (6 / report['fps']) / 1000) < 1e-9
    frozen = report['results']['frozen_key_frame']
    assert frozen['bits'] < s2d['bits']  # the key frame alone, without the keypoints
    anchor_name = next(k for k in report['results'] if k.startswith('vvc_anchor'))
    anchor = report['results'][anchor_name]
    tried = dict(map(tuple, report['anchor_qps_tried']))
    assert tried[anchor['qp']] == anchor['bits']  # the anchor is the tried QP closest in rate
    assert all(abs(b - s2d['bits']) >= abs(anchor['bits'] - s2d['bits']) for b in tried.values())
    for result in report['results'].values():
        assert 0 < result['ms_ssim'] <= 1 and result['psnr'] > 5 and 0 <= result['vmaf'] <= 100
    assert report['decode_fps'] > 0 and 'sparse2dense' in printed and 'MS-SSIM' in printed
    # motion fidelity per codec; the frozen key frame never moves: 0 correlation, 0 face speed
    for result in report['results'].values():
        assert result['motion']['frames'] == 6 and result['motion']['frames_no_face_original'] == 0
    frozen_motion = frozen['motion']
    assert frozen_motion['mouth_corr'] == frozen_motion['yaw_corr'] == 0.0
    assert frozen_motion['face_speed_decoded_px_s'] == 0 and frozen_motion['face_error_px'] > 0
    assert 'motion fidelity' in printed and 'mouth r' in printed
    side_by_side, _ = read_frames(out / 'side_by_side.mp4')
    assert side_by_side.shape == (6, 256, 3 * 256, 3)
    assert np.load(out / 'vertices.npz')['vertices'].shape == (6, 543, 2)


def test_demo_missing_checkpoint_is_a_clear_error(sample_video, tmp_path, capsys):
    assert cli.main(['demo', '--checkpoint', str(tmp_path / 'none.pth'), '--input', str(sample_video),
                     '--out', str(tmp_path / 'demo')]) == 1
    assert 'does not exist' in capsys.readouterr().err
