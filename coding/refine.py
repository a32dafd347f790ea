"""Encoder-side keypoint refinement: analysis by synthesis.

The decoder renders a frame from the key frame and the frame's keypoints, whatever keypoints it is sent. The keypoint
detector's are only a first guess: the encoder, which holds the original frame, can search for the keypoints whose
*rendering* is closest to it, as a classical encoder searches for the motion vectors whose prediction is closest to
the block (motion estimation), and as GAN inversion searches a latent code. This module runs that search with the
networks fixed: a few steps of gradient descent on the keypoints that lower the L1 distance between the generator's
rendering and the original frame, starting from the detected keypoints, keeping for each frame the keypoints with the
lowest distance seen (so the rendering is never further from the original than the detector's, before
quantization).

Each step is normalised per frame so that the coordinate with the largest gradient moves ``lr`` (heavy-ball
momentum 0.5): coordinates that barely change the rendering barely move, which keeps the keypoints' frame-to-frame
residuals, and so their bits, small. Measured against Adam, which moves every coordinate by about ``lr`` per step
however small its gradient: at 10 steps on 40 frames of two validation clips (head10, face17; shipped model) Adam
gained +1.35 / +2.65 dB for +52 / +50 keypoint bits per frame, this search +1.1 / +2.8 dB for +18 / +12 bits.

The bitstream and the decoder do not change: refined keypoints are quantized and coded like detected ones.
``python -m benchmarks.bench_refine`` measures it on the validation clips (docs/REFINE.md).
"""
import torch

#: largest coordinate move per step, normalised units ([-1, 1] spans the frame): 0.01 is 0.64 px at 128x128
DEFAULT_LR = 0.01
#: heavy-ball momentum of the search
MOMENTUM = 0.5


def rendering_error(prediction, targets):
    """What the search lowers: per-frame mean absolute error (B,) of ``prediction`` against ``targets``, both
    (B, 3, H, W) in [0, 1]."""
    return (prediction - targets).abs().mean(dim=(1, 2, 3))


def refine_keypoints(generator, source_features, kp_source, kp_driving, targets, steps, lr=DEFAULT_LR):
    """Keypoints whose rendering is closer (L1) to ``targets`` than that of ``kp_driving``.

    Args:
        generator: the OcclusionAwareGenerator (modules/generator.py), in eval mode.
        source_features: ``generator.encode_source(key frame)``, computed outside ``torch.inference_mode``
            (inference tensors cannot take part in a backward pass).
        kp_source: the key frame's keypoints (1, K, 3) in [-1, 1] (as the decoder has them: dequantized).
        kp_driving: the starting keypoints (B, K, 3) in [-1, 1], e.g. the detector's.
        targets: the original frames (B, 3, H, W) in [0, 1], at the model size.
        steps: number of descent steps (0 returns ``kp_driving`` unchanged); each renders the batch once.
        lr: largest coordinate move per step, normalised units.
    Returns:
        (B, K, 3) float tensor in [-1, 1], detached: per frame, the evaluated keypoints with the lowest mean
        absolute error of the rendering (the start included).
    Raises:
        ValueError: ``steps`` < 0, ``lr`` <= 0, or batch sizes of ``kp_driving`` and ``targets`` differ.
    Source: analysis-by-synthesis motion search; normalised gradient descent with heavy-ball momentum.
    """
    if steps < 0 or not lr > 0:
        raise ValueError(f'refinement needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}')
    if kp_driving.shape[0] != targets.shape[0]:
        raise ValueError(f'{kp_driving.shape[0]} keypoint sets for {targets.shape[0]} target frames')
    best = kp_driving.detach().clone()
    kp = best.clone().requires_grad_(True)
    best_error = torch.full((kp.shape[0],), float('inf'), device=kp.device)
    velocity = torch.zeros_like(best)
    for _ in range(steps):
        with torch.enable_grad():
            prediction = generator.render(source_features, kp_source, kp)['prediction']
            error = rendering_error(prediction, targets)
            # per-frame errors summed: each frame's gradient does not depend on the batch; only the keypoints'
            # gradient is computed (the networks' weights stay fixed)
            gradient, = torch.autograd.grad(error.sum(), kp)
        with torch.no_grad():
            better = error < best_error
            best_error = torch.where(better, error, best_error)
            best[better] = kp[better]
            largest = gradient.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
            velocity = MOMENTUM * velocity + gradient / largest
            kp -= lr * velocity
            kp.clamp_(-1, 1)
    return best
