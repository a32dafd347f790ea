"""The Sparse2Dense codec: VVC key-reference frame (vvc), entropy-coded keypoints (keypoint_coder),
the .s2d container (bitstream), the Encoder/Decoder API (codec) and a GFVC-style comparison coder
(gfvc_baseline)."""
