"""Measurements: fidelity, quality against ground truth, latency, held-out evaluation."""
