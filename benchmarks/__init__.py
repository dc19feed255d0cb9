"""Benchmarks: sagactl's speed as ratios against baselines measured in the same run."""
