"""Evaluation of the Sparse2Dense codec: quality metrics, BD-rate, the rate-distortion pipeline, vertex accuracy,
motion fidelity.

Modules:
    metrics   per-frame / per-sequence quality metrics (PSNR, YUV-PSNR, SSIM, MS-SSIM) and the MetricSuite
              that also runs VMAF, the learned metrics and the FVD features;
    vmaf      VMAF through the ffmpeg (libvmaf) bundled with imageio-ffmpeg;
    weights   where pretrained metric weights are looked up (never downloaded) and how a missing file is reported;
    learned   LPIPS (VGG, Alex) and DISTS;
    fvd       Frechet Video Distance (I3D TorchScript features, Frechet distance);
    bdrate    Bjontegaard-delta rate (bjontegaard package, piecewise cubic);
    rd        the rate-distortion pipeline (run.py --mode rd);
    vertices  vertex accuracy against teacher labels (run.py --mode vertices);
    motion    motion fidelity: the Holistic teacher on original and decoded frames (landmark error, mouth / head
              correlation over time, frames without a face);
    plots     RD plots (PNG).
"""
