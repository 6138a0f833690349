"""Drawn page sections that several pages share (job progress, uploads, downloads, energy, ONNX Runtime)."""
