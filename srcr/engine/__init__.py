"""The training / evaluation engine shared by `srcr train`, `srcr evaluate` and `srcr bench train`:
distributed set-up (torchrun), the seeded infinite sampler, checkpoints, the resumable JSONL log and
test-time inference (whole image, sliding window, flip, multi-scale)."""
