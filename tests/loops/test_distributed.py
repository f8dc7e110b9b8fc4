"""Two processes x two fake CPU devices joined by jax.distributed (gloo): one learner on a
4-device mesh, its replicas bitwise-equal across processes."""

import sys
from pathlib import Path

import numpy as np

from inject_rl import loops

WORKER = Path(__file__).with_name("_dist_worker.py")


def test_two_processes_keep_four_replicas_bitwise_equal(tmp_path):
    results = loops.launch_processes(
        [sys.executable, str(WORKER), str(tmp_path)],
        num_processes=2,
        devices_per_process=2,
        timeout_s=90,
    )
    for pid, r in enumerate(results):
        assert r.returncode == 0, f"process {pid} failed:\n{r.output[-4000:]}"
        assert "200 learner steps" in r.output
    procs = [np.load(tmp_path / f"proc{pid}.npz") for pid in range(2)]
    state_keys = [k for k in procs[0].files if not k.startswith("metrics/")]
    assert state_keys and set(procs[0].files) == set(procs[1].files)
    for k in state_keys:
        replicas = np.concatenate([p[k] for p in procs])  # [4, ...]: 2 local per process
        assert replicas.shape[0] == 4, k
        for i in range(1, 4):
            assert np.array_equal(replicas[0], replicas[i], equal_nan=True), (k, i)
    # Not vacuous: the return-driven learning-rate schedule moved, and both processes saw
    # finished episodes of their own envs (synced before reaching the schedule).
    lr = procs[0]["metrics/hp/learning_rate"]
    assert lr[-1] < lr[0]
    np.testing.assert_array_equal(
        procs[0]["metrics/hp/learning_rate"], procs[1]["metrics/hp/learning_rate"]
    )
    assert procs[0]["metrics/episode_count"].sum() > 0


def test_a_failing_process_does_not_hang_the_others():
    # Process 1 fails; process 0 stands for one waiting forever in a collective for it.
    code = (
        "import os, sys, time\n"
        "if os.environ['INJECT_RL_PROCESS_ID'] == '1': sys.exit(3)\n"
        "time.sleep(600)\n"
    )
    results = loops.launch_processes(
        [sys.executable, "-c", code], num_processes=2, timeout_s=120, grace_s=1
    )
    assert results[1].returncode == 3
    assert results[0].returncode < 0  # killed by the launcher, not left running
