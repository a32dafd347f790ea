"""Temporary files that name their writer, so leftovers of a killed process are removed by the next run.

Every temporary sibling of an output is named ``<prefix><PID>...`` (e.g. ``.out.mp4.tmp1234``,
``.checkpoint.pth.tmp1234.ab12cd.pth``, ``s2d_vvc_1234_xyz``). A SIGKILL leaves it behind; the next writer of the
same output calls :func:`remove_stale` which deletes the ones whose process no longer exists (a live process, or a
PID reused by another live process, is never touched) *and* that nothing has touched for ``STALE_AFTER_S``: a PID
says nothing about a writer in another PID namespace sharing the folder (a container or a sandbox with the same
``/tmp``), whose live files would otherwise be deleted under it.
"""
import os
import re
import shutil
import time

#: a temporary younger than this (its own or, for a folder, its entries' newest modification) is never removed,
#: whatever its PID says (s)
STALE_AFTER_S = 6 * 3600


def pid_alive(pid):
    """True if a process with this PID exists (or exists but belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def tmp_prefix(name):
    """Prefix of this process's temporary siblings of an output called ``name``: ``.<name>.tmp<PID>``."""
    return f'.{name}.tmp{os.getpid()}'


def _newest_change(path):
    """Latest modification time (s since the epoch) of ``path`` and, for a folder, of its direct entries."""
    times = [os.lstat(path).st_mtime]
    if os.path.isdir(path) and not os.path.islink(path):
        with os.scandir(path) as entries:
            times += [entry.stat(follow_symlinks=False).st_mtime for entry in entries]
    return max(times)


def remove_stale(folder, prefix, min_age_s=None):
    """Delete entries ``<prefix><PID>...`` of ``folder`` whose process PID is gone and which nobody modified for
    ``min_age_s`` seconds; returns how many were removed.

    Args:
        folder: the folder holding the temporaries.
        prefix: the part before the PID, e.g. ``.out.mp4.tmp`` or ``s2d_vvc_``.
        min_age_s: the quiet time that makes an entry stale, s (default ``STALE_AFTER_S``).
    """
    try:
        entries = os.listdir(folder)
    except OSError:
        return 0
    pattern = re.compile(re.escape(prefix) + r'(\d+)(?:\D|$)')
    removed = 0
    for name in entries:
        match = pattern.match(name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        path = os.path.join(folder, name)
        try:
            if time.time() - _newest_change(path) < (STALE_AFTER_S if min_age_s is None else min_age_s):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed += 1
        except OSError:
            pass
    return removed


def remove_stale_siblings(path):
    """Remove the leftovers ``.<name>.tmp<PID>...`` of dead writers next to output ``path``."""
    path = os.path.abspath(path)
    return remove_stale(os.path.dirname(path), f'.{os.path.basename(path)}.tmp')
