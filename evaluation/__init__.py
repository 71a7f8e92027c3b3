"""Evaluation of trained policies and of the sim-to-real gap: episodes, robustness maps,
learning curves, videos, and physical parameters fitted from robot logs."""
