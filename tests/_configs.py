"""Configs shared by the tests that need a small finished run (a few seconds of training)."""

SMALL_RUN = """
seed = 1
[data]
n_source = 4
n_seen = 8
n_unseen = 3
n_val = 2
n_source_images = 8
n_trainval_images = 10
n_test_seen_images = 4
n_test_unseen_images = 6
[model]
width = 8
hidden = 16
[train]
pretrain_epochs = 1
epochs = 2
[mapping]
epochs = 3
n_holdout = 1
[explain]
epochs = 5
[transfer]
lam_grid = [0.0, 0.01]
max_steps = 5
batch_size = 8
"""
"""A shapes-world run small enough for a test, with every stage (the inverse map too) present."""
