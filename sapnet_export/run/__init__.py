"""Deraining: files, the streaming pipeline, the frame-rate budget."""
