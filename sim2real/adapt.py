"""`sim2real adapt LOG --out DIR`: the next policy from what the robot showed in a deploy log.

Fit the log (evaluation/sysid.py), build the next randomization from the fit, retrain the same
algorithm on the same env with it, export. The next randomization is the one the deployed policy
was trained under (from the contract in the log) with each fitted term replaced by sysid's
suggestion: centred on the measured value and widened by its uncertainty (at least +-15 %), and
the command delay by the robot's measured lag (latency plus fitted delay) within a step. The
terms not fitted keep their trained ranges: what the log cannot tell is not narrowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KEPT_FROM_TRAINED = ("match", "operation", "when")
"""What a fitted term keeps of its trained entry: the elements and the way it applies."""


def next_randomization(trained: dict[str, Any], suggested: dict[str, Any]) -> dict[str, Any]:
    """The trained-under config (a contract's `randomization`) with each suggested term in
    place of its range; ADR's section is left out (its ranges ended where the contract says, and
    the fit now says where the robot is)."""
    merged = {term: dict(spec) for term, spec in trained.items() if term != "adr"}
    for term, spec in suggested.items():
        kept = {key: value for key, value in merged.get(term, {}).items()
                if key in KEPT_FROM_TRAINED}
        merged[term] = {**kept, "distribution": "uniform", **spec}
    return merged


def adapt(log_path: Path, out: Path, steps: int | None = None, seed: int = 0,
          progress: bool = True, max_delay: int | None = None) -> dict[str, Any]:
    """Fit `log_path`, retrain on the next randomization into `out/run`, export it; returns what
    each step made (the fit's report, the config, the training result, the policy's path)."""
    import yaml

    from deploy.export import export
    from deploy.telemetry import read_log
    from evaluation.sysid import MAX_DELAY_STEPS, identify, summary_lines
    from policies.records import atomic_write_bytes
    from sim2real.runs import train_run

    log = read_log(log_path)
    contract = log.header.get("contract") or {}
    if not contract.get("env_id") or not contract.get("algorithm"):
        raise ValueError(f"{log_path} carries no policy contract (env and algorithm); adapt a "
                         "log written by `sim2real deploy` of an exported policy")
    if steps is not None and steps <= 0:
        raise ValueError(f"--steps must be a positive number of env steps, got {steps}")
    summary = identify(log_path, out / "sysid", max_delay=max_delay or MAX_DELAY_STEPS)
    suggested = yaml.safe_load(Path(summary["suggested_config"]).read_text())
    config = next_randomization(contract.get("randomization") or {}, suggested)
    config_path = out / "randomization.yaml"
    atomic_write_bytes(config_path, (
        f"# Written by `sim2real adapt {log_path}`: the randomization {contract['env_id']} was\n"
        "# trained under, each term sysid fitted centred on the robot's measured value.\n"
        + yaml.safe_dump(config, sort_keys=False)).encode())
    steps = steps or int(contract["steps"])
    result = train_run(contract["env_id"], contract["algorithm"], steps, seed, out / "run",
                       str(config_path), overwrite=True, progress=progress)
    # The checkpoint that evaluated best (as `export --best`): a swing-up's last one can be
    # mid-way through a dip.
    exported = export(out / "run", which="best" if (out / "run" / "best.pt").is_file()
                      else "checkpoint")
    lines = [*summary_lines(summary), f"retrained on {config_path}: {result['steps']} steps -> "
             f"{exported.path}"]
    return {"sysid": summary, "randomization": str(config_path), "train": result,
            "policy": str(exported.path), "lines": lines}
