"""VMAF (Netflix) of a decoded sequence against its reference, through the ffmpeg bundled with imageio-ffmpeg.

Protocol: both sequences are written losslessly as raw RGB24 files, converted by ffmpeg's swscale to YUV 4:2:0
8-bit (BT.601 limited range, ffmpeg's default for untagged RGB input), and compared by the libvmaf filter with
the built-in model VMAF_MODEL on all frames, 1 thread; the per-sequence score is the mean of the per-frame scores
(libvmaf's 'pooled mean'), range [0, 100], higher is better.
"""
import json
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

VMAF_MODEL = 'vmaf_v0.6.1'


def _check_frames(reference, distorted):
    for name, arr in (('reference', reference), ('distorted', distorted)):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"{name} frames must be uint8 (T, H, W, 3) RGB, got {arr.dtype} {arr.shape}")
    if reference.shape != distorted.shape:
        raise ValueError(f"reference {reference.shape} and distorted {distorted.shape} differ in shape; "
                         "decode at the reference resolution")


def vmaf(reference, distorted, fps=25.0, threads=1):
    """Sequence VMAF.

    Args:
        reference: (T, H, W, 3) uint8 RGB original frames.
        distorted: (T, H, W, 3) uint8 RGB decoded frames, same shape.
        fps: frame rate passed to ffmpeg (does not change the score).
        threads: libvmaf worker threads.
    Returns:
        dict(vmaf=float mean over frames in [0, 100], vmaf_frames=list of per-frame scores,
             libvmaf_version=str, model=VMAF_MODEL).
    Raises:
        ValueError: bad frame arrays.
        RuntimeError: ffmpeg failed (its stderr is included).
    """
    _check_frames(reference, distorted)
    height, width = reference.shape[1:3]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix='s2d-vmaf-') as tmp:
        tmp = Path(tmp)
        np.ascontiguousarray(distorted).tofile(tmp / 'distorted.rgb')
        np.ascontiguousarray(reference).tofile(tmp / 'reference.rgb')
        raw = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{width}x{height}', '-r', f'{fps}']
        graph = ('[0:v]format=yuv420p[dis];[1:v]format=yuv420p[ref];'
                 f'[dis][ref]libvmaf=model=version={VMAF_MODEL}:log_fmt=json:log_path=vmaf.json'
                 f':n_threads={threads}')
        cmd = [ffmpeg, '-nostdin', '-hide_banner', '-loglevel', 'error', *raw, '-i', str(tmp / 'distorted.rgb'),
               *raw, '-i', str(tmp / 'reference.rgb'), '-lavfi', graph, '-f', 'null', '-']
        # cwd=tmp and a relative log path: a TMPDIR with ':' or quotes cannot break the filter graph's syntax
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0 or not (tmp / 'vmaf.json').is_file():
            raise RuntimeError(f"ffmpeg libvmaf failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        log = json.loads((tmp / 'vmaf.json').read_text())
    frames = [f['metrics']['vmaf'] for f in log['frames']]
    if len(frames) != len(reference):
        raise RuntimeError(f"libvmaf scored {len(frames)} frames, expected {len(reference)}")
    return dict(vmaf=float(np.mean(frames)), vmaf_frames=frames, libvmaf_version=str(log.get('version')),
                model=VMAF_MODEL)
