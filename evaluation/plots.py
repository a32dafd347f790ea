"""RD plots (PNG, matplotlib): quality on the paper's higher-is-better scale against kbps, one line per codec.

The uncompressed reconstruction has no rate: it is drawn as a dashed horizontal line (the quality ceiling). A curve
swept over key QP x refresh threshold is drawn as its Pareto front, its other operating points as faint dots.
"""
import io
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend chosen first: no display here)

from evaluation.bdrate import pareto_front, quality_label, to_quality  # noqa: E402
from video_io import atomic_path  # noqa: E402

# Paper Figure 4 order: 1-DISTS, 1-LPIPS, 5000-FVD; then VMAF, MS-SSIM, PSNR and the other offline metrics.
PLOT_METRICS = ('dists', 'lpips_alex', 'lpips_vgg', 'fvd', 'vmaf', 'ms_ssim', 'psnr', 'psnr_yuv', 'ssim')


def plot_rd(summary, metric, path):
    """Draw and save one RD plot.

    Args:
        summary: evaluation.rd.summarize() output ('curves' with per-QP mean 'kbps' and metric values).
        metric: metric name (y axis on its higher-is-better scale, e.g. 1-DISTS).
        path: output PNG path (written atomically).
    Returns:
        the matplotlib Figure (caller may log it; it is not closed here).
    """
    figure, axis = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    for index, curve in enumerate(summary['curves'].values()):
        color = f'C{index}'               # one colour per curve: scatter and plot advance different colour cycles
        points = [p for p in curve['points'] if p.get(metric) is not None]
        if not points:
            continue
        if curve['codec'] == 'reconstruction':
            axis.axhline(float(to_quality(metric, [points[0][metric]])[0]), linestyle='--', color='grey',
                         label=curve['label'])
            continue
        if curve.get('pareto'):           # a sweep: every operating point faint, its Pareto front as the curve
            axis.scatter([p['kbps'] for p in points], to_quality(metric, [p[metric] for p in points]), s=10,
                         alpha=0.35, color=color)
            quality = [float(q) for q in to_quality(metric, [p[metric] for p in points])]
            points = [points[i] for i in pareto_front([p['kbps'] for p in points], quality)]
            axis.plot([p['kbps'] for p in points], to_quality(metric, [p[metric] for p in points]), marker='o',
                      label=curve['label'], color=color)
            continue
        points = sorted(points, key=lambda p: p['kbps'])
        axis.plot([p['kbps'] for p in points], to_quality(metric, [p[metric] for p in points]), marker='o',
                  label=curve['label'], color=color)
    axis.set_xlabel('bitrate (kbps)')
    axis.set_ylabel(quality_label(metric))
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return figure
