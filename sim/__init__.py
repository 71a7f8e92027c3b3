"""Simulation: robot specs and tasks (numpy only), MuJoCo physics and Gymnasium envs.

Importing it registers our env ids with Gymnasium where Gymnasium is installed: after `import
sim`, `gymnasium.make("sim2real/ArmReach-v0")`; in a fresh interpreter,
`gymnasium.make("sim:sim2real/ArmReach-v0")` (Gymnasium imports the module named before the colon;
since 1.0 it loads no plugins from entry points, so a bare id cannot register itself). A robot's
computer has no Gymnasium: there nothing is registered and the numpy-only modules import as ever.
"""

import os

# Offscreen rendering without a display: EGL works on a headless machine; it must be chosen
# before anything imports mujoco (gymnasium-robotics does, on registration).
os.environ.setdefault("MUJOCO_GL", "egl")

try:
    import gymnasium  # noqa: F401  (only whether it is there)
except ImportError:  # a robot's computer
    pass
else:
    from sim.registration import register_our_envs

    register_our_envs()
