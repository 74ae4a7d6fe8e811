"""The Sampler: user-written sampling configs -> sampled training datasets, cached by lineage."""
