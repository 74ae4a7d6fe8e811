"""Data validation before training (TFX's ExampleValidator): is the sampled window fit to train on?
Dataset health, drift against the reference days, and the joint shape of labels."""
