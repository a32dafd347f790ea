"""benchmarks/bench_codec.py's long-input builder and benchmarks/peak_rss.py, on the two bundled real clips."""
import json
import subprocess
import sys

import numpy as np

from benchmarks.bench_codec import build_concatenated_input, concatenated_clips
from coding.codec import read_video
from video_io import probe, read_frames


def test_concatenation_repeats_the_clips_in_order(samples_dir, tmp_path):
    clips = [(name, samples_dir / f'{name}.mp4', 'center') for name in ('head04', 'full01')]
    per_clip = [np.stack(list(read_video(path, 64, crop='center', fps=10)[0])) for _, path, _ in clips]
    assert [len(f) for f in per_clip] == [20, 20]                        # 60 frames at 30 fps -> 10 fps
    frames = [f for f, _, _ in concatenated_clips(clips, 64, 10, 50)]
    assert len(frames) == 50
    expected = np.concatenate([per_clip[0], per_clip[1], per_clip[0][:10]])
    assert np.array_equal(np.stack(frames), expected)

    path = tmp_path / 'long.mp4'
    starts = build_concatenated_input(path, clips, 64, 10, 50)
    assert starts == [(0, 'head04'), (20, 'full01'), (40, 'head04')]
    written, fps = read_frames(path)
    assert fps == 10 and np.array_equal(written, expected)              # lossless
    assert (probe(path).width, probe(path).height) == (64, 64)


def test_peak_rss_reports_the_scripts_own_peak_and_exit_status(tmp_path, repo_root):
    """The peak is the script's own, not the (larger, torch-loaded) pytest process's that started it."""
    script = tmp_path / 'grow.py'
    script.write_text('import sys\nblock = bytearray(80 * 2**20)\nblock[::4096] = b"x" * len(block[::4096])\n'
                      'sys.exit(3)\n')
    report = tmp_path / 'report.json'
    status = subprocess.call([sys.executable, '-m', 'benchmarks.peak_rss', str(report), str(script)], cwd=repo_root)
    result = json.loads(report.read_text())
    assert status == 3 and result['exit'] == 3
    assert 80 < result['peak_mb'] < 200 and result['seconds'] >= 0
