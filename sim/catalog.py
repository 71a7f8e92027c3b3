"""Our robots and tasks by name, as plain dicts: the names travel in exported contracts, so the
deploy runtime rebuilds the exact task the policy was trained on. numpy only."""

from __future__ import annotations

from collections.abc import Callable

from sim.reach import ReachConfig, ReachTask
from sim.so_arm import SO_ARM
from sim.spec import RobotSpec

ROBOTS: dict[str, RobotSpec] = {SO_ARM.name: SO_ARM}


def _reach(robot: RobotSpec, config: dict | None) -> ReachTask:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (config or {}).items()}
    return ReachTask(robot, ReachConfig(**fields))


TASKS: dict[str, Callable[[RobotSpec, dict | None], ReachTask]] = {"reach": _reach}


def robot_by_name(name: str) -> RobotSpec:
    if name not in ROBOTS:
        raise ValueError(f"unknown robot {name!r}; known robots: {', '.join(sorted(ROBOTS))}")
    return ROBOTS[name]


def make_task(name: str, robot: RobotSpec, config: dict | None = None) -> ReachTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](robot, config)
