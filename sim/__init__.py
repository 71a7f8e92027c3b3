"""Simulation: robot specs and tasks (numpy only), MuJoCo physics and Gymnasium envs."""

import os

# Offscreen rendering without a display: EGL works on a headless machine; it must be chosen
# before anything imports mujoco (gymnasium-robotics does, on registration).
os.environ.setdefault("MUJOCO_GL", "egl")
