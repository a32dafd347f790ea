"""Leftover temporaries (tempfiles.py): only those of a dead writer that nobody touched for a while are removed."""
import os

import tempfiles
from tests.conftest import age, dead_pid


def test_recent_or_live_temporaries_are_kept_old_dead_ones_removed(tmp_path):
    dead = dead_pid()
    fresh_dir = tmp_path / f's2d_vvc_{dead}_fresh'           # a dead PID, but written just now: another namespace?
    fresh_dir.mkdir()
    (fresh_dir / 'out.266').write_bytes(b'x')
    old_dir = tmp_path / f's2d_vvc_{dead}_old'
    old_dir.mkdir()
    (old_dir / 'in.yuv').write_bytes(b'y')
    live_old = tmp_path / f's2d_vvc_{os.getppid()}_live'     # old, but its writer runs
    live_old.mkdir()
    age(old_dir / 'in.yuv', old_dir, live_old)
    # a folder whose entry was modified recently is not stale, even if the folder itself is old
    busy = tmp_path / f's2d_vvc_{dead}_busy'
    busy.mkdir()
    (busy / 'out.266').write_bytes(b'z')
    other = tmp_path / 'unrelated_1'
    other.mkdir()
    age(busy, other)
    assert tempfiles.remove_stale(tmp_path, 's2d_vvc_') == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh_dir.name, live_old.name, busy.name, other.name])
    assert tempfiles.remove_stale(tmp_path, 's2d_vvc_', min_age_s=0) == 2      # fresh and busy, once quiet is 0 s


def test_stale_siblings_of_an_output(tmp_path):
    dead = dead_pid()
    output = tmp_path / 'clip.s2d'
    leftover = tmp_path / f'.clip.s2d.tmp{dead}.ab12'
    leftover.write_bytes(b'partial')
    assert tempfiles.remove_stale_siblings(output) == 0 and leftover.exists()
    age(leftover)
    assert tempfiles.remove_stale_siblings(output) == 1 and not leftover.exists()
