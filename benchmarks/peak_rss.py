"""Run a Python script as ``__main__`` and record its own peak resident memory (used by bench_codec's long-input test).

    python -m benchmarks.peak_rss REPORT.json SCRIPT [ARGS...]

When the script ends (normally, by ``sys.exit`` or by an exception) REPORT.json gets ``{"peak_mb": ..,
"ru_maxrss_mb": .., "seconds": .., "exit": ..}``. ``peak_mb`` is the ``VmHWM`` of /proc/self/status: the peak
resident memory of this process image since it was started, the script's Python process alone (not the helper
programs it runs). ``ru_maxrss_mb`` (getrusage RUSAGE_SELF) is given for reference only: Linux carries the peak of the
address space a process had before ``exec`` into it, so a process started by a large parent (fork or vfork) reports at
least the parent's size there (measured: a script holding 80 MB, started from a pytest process with torch loaded,
gave ru_maxrss 538 MB). ``seconds`` is the script's wall time. Until the script ends the module has imported only the
standard library, so nothing but the script itself counts in the peak (the report is measured first, then written
through ``video_io.atomic_path``). The exit status is the script's.
"""
import json
import resource
import runpy
import sys
import time


def peak_rss_mb():
    """Peak resident set size of this process image in MB: VmHWM of /proc/self/status (Linux), else ru_maxrss
    (which on Linux includes the pre-exec peak, see the module doc; KB on Linux)."""
    try:
        with open('/proc/self/status') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_script(report, script, args):
    """Run ``script`` with ``sys.argv = [script, *args]`` as ``__main__``; write the report (see the module doc) to
    ``report`` whatever happens, then let the script's SystemExit or exception propagate."""
    sys.argv = [script] + list(args)
    start = time.perf_counter()
    status = 0
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) or done.code is None else 1
        raise
    except BaseException:
        status = 1
        raise
    finally:
        result = {'peak_mb': peak_rss_mb(), 'ru_maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'seconds': time.perf_counter() - start, 'exit': status or 0}
        from video_io import atomic_path        # only now: the peak is measured
        with atomic_path(report) as tmp, open(tmp, 'w') as handle:
            json.dump(result, handle)


if __name__ == '__main__':
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    run_script(sys.argv[1], sys.argv[2], sys.argv[3:])
