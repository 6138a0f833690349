"""Cached computations per page family: reductions of tensors and models to small arrays, no drawing."""
