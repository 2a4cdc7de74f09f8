"""Quality parity against the PyTorch reference with gates, the multi-format bench, reports."""
