"""Seeded, bounded fuzzing of the library decoder (benchmarks/fuzz_decoder.py, issue 11): raw, CRC-valid header,
index, key-frame and keypoint mutations of multi-key-frame and version-1 streams; only BitstreamError / VVCError (the documented errors) may come out, no case may
take 10 s, and the whole run holds under an address-space limit (RLIMIT_AS, in a subprocess)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fuzzed_bitstreams_end_in_documented_errors_within_bounds(tmp_path):
    report_path = tmp_path / 'fuzz.json'
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.fuzz_decoder', '--cases', '200',
                           '--seed', '11', '--memory-limit-mb', '1024', '--case-timeout', '10',
                           '--json', str(report_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=110, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report['bad'] == 0 and report['clean'] == 200
    assert report['max_case_seconds'] < 10
    assert report['peak_rss_bytes'] < 2 * 2 ** 30
    kinds = report['outcomes']
    assert set(kinds) == {'raw', 'header', 'index', 'key_frame', 'keypoints', 'combined'}
    # the CRC-valid mutations reach past the CRC checks: some are decoded, some fail in the key frame decoder
    assert sum(k.get('decoded', 0) for k in kinds.values()) > 0 and kinds['key_frame'].get('VVCError', 0) > 0
    assert 'bad outcomes: 0' in proc.stdout
