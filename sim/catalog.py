"""Our robots and tasks by name, as plain dicts: the names travel in exported contracts, so the
deploy runtime rebuilds the exact task the policy was trained on. numpy only."""

from __future__ import annotations

from collections.abc import Callable

from sim.furuta import FURUTA
from sim.pendulum import PendulumConfig, PendulumTask
from sim.push import PushConfig, PushTask
from sim.reach import ReachConfig, ReachTask
from sim.so_arm import SO_ARM
from sim.spec import RobotSpec
from sim.task import Task

ROBOTS: dict[str, RobotSpec] = {SO_ARM.name: SO_ARM, FURUTA.name: FURUTA}


def _with_config(task_class: type, config_class: type) -> Callable[[RobotSpec, dict | None], Task]:
    def build(robot: RobotSpec, config: dict | None) -> Task:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (config or {}).items()}
        unknown = set(fields) - set(config_class.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{config_class.__name__} has no field(s) {sorted(unknown)}; "
                             f"fields: {sorted(config_class.__dataclass_fields__)}")
        return task_class(robot, config_class(**fields))

    return build


TASKS: dict[str, Callable[[RobotSpec, dict | None], Task]] = {
    "reach": _with_config(ReachTask, ReachConfig),
    "push": _with_config(PushTask, PushConfig),
    "pendulum": _with_config(PendulumTask, PendulumConfig),
}


CONFIG_BEFORE_FIELDS: dict[str, dict[str, object]] = {
    "reach": {"command_history": 0, "action_base": "measured"},
}
"""What a task config meant by leaving a field out before the field existed: a contract's config
lists every field of its day, and the reach arm stepped from the measured position with no command
history until both changed default."""


def task_from_contract(name: str, robot: RobotSpec, config: dict | None) -> Task:
    """The task a policy was trained on, from its contract's task name and config: a field the
    config lacks (exported before it existed) takes the value it had then, not today's default."""
    return make_task(name, robot, {**CONFIG_BEFORE_FIELDS.get(name, {}), **(config or {})})


def robot_by_name(name: str) -> RobotSpec:
    if name not in ROBOTS:
        raise ValueError(f"unknown robot {name!r}; known robots: {', '.join(sorted(ROBOTS))}")
    return ROBOTS[name]


def make_task(name: str, robot: RobotSpec, config: dict | None = None) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](robot, config)
