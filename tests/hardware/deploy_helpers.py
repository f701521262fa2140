"""Shared pieces of the policy node / deploy / end-to-end tests: policy bundles made the real way (`robot-rl train`
then `robot-rl export`, once per test session), and a policy_node process on a private loopback DDS domain."""
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "robot_rl/presets/cpu_small.yaml"


def robot_rl(*args: str, timeout: float = 900) -> None:
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"robot-rl {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def train_and_export(folder: Path, steps: int, seed_steps: int | None = None, *extra: str) -> Path:
    """panda-reach trained for `steps` environment steps with the CPU preset (plus `extra` train keys), exported
    to a folder under `folder` (reused when already there: test modules of one session share the base folder)."""
    name = "_".join([str(steps), *(e.replace("=", "") for e in extra)])
    bundle = folder / f"bundle_{name}"
    if (bundle / "bundle.json").is_file():
        return bundle
    kept = Path(os.environ.get("ROBOT_RL_TEST_BUNDLES", "")) / f"bundle_{name}"   # bundles kept across sessions
    if os.environ.get("ROBOT_RL_TEST_BUNDLES") and (kept / "bundle.json").is_file():
        return kept
    run = folder / f"run_{name}"
    extra = (*extra, f"seed_steps={seed_steps}") if seed_steps is not None else extra
    robot_rl("train", f"config={PRESET}", "task=panda-reach", f"steps={steps}", "seed=1", f"out={run}",
             "envs=1", "updates_per_step=1",  # the settings the end-to-end figures were measured with
             "eval_every=0", "eval_episodes=1", "checkpoint_every=0", "threads=1", "progress=false",
             "tensorboard=false", *extra)
    robot_rl("export", f"checkpoint={run / 'agent.pt'}", f"out={bundle}")
    return bundle


def dds_env(domain: int) -> dict:
    from hardware.transport.dds import local_only_config

    return {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
            "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def start_policy_node(domain: int, bundle: Path, *params: str) -> subprocess.Popen:
    args = ["--ros-args", "--params-file", str(ROOT / "launch/config/policy.yaml"), "-p", f"bundle:={bundle}",
            "-p", "diagnostics_period_s:=0.1"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen([sys.executable, "-m", "hardware.nodes.policy_node", *args], env=dds_env(domain),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen, sig=signal.SIGINT) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    return out
