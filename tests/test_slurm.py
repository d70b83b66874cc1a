"""The workflow on a real single-node Slurm cluster, through workflow/profiles/slurm.

The cluster (tests/slurm_cluster.py) is installed with apt-get where it is missing, so these
tests need root; elsewhere they skip. Skip them on purpose with ``-m 'not slurm'``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from slurm_cluster import SlurmCluster, unavailable_reason

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "profile.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_TIMEOUT_S = 420
# Rules whose jobs must ask Slurm for a GPU; every other submitted job must not.
GPU_RULES = {"train", "bench"}
# metrics.json fields that time the computation or record where it ran, not its result.
NOT_COMPARED = {"wall_s", "train_s", "images_per_s", "train_images_per_s", "machine", "git_commit"}

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="the executor plugin is missing: pip install -e '.[slurm]'",
    )
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with SlurmCluster() as running:
        yield running


def cluster_profile(cluster: SlurmCluster, folder: Path) -> Path:
    """The shipped profile, its requests cut down to what the test node has.

    Threads are capped at the node's cores and memory at its memory per core, so that every
    job fits. The node's GPU is fake: the workflow's own configuration says where to train.
    Status checks start early, and there is no account on this cluster.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    del profile["config"]
    mem_cap = cluster.memory_mb // cluster.cpus
    profile["default-resources"] = [
        _cap_memory(item, mem_cap) for item in profile["default-resources"]
    ]
    for resources in profile["set-resources"].values():
        resources["mem_mb"] = min(resources.get("mem_mb", mem_cap), mem_cap)
    profile["set-threads"] = {
        rule: min(threads, cluster.cpus) for rule, threads in profile["set-threads"].items()
    }
    profile["cores"] = min(profile["cores"], cluster.cpus)
    profile.update(
        {
            "slurm-no-account": True,
            "slurm-init-seconds-before-status-checks": 2,
        }
    )
    folder.mkdir(parents=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _cap_memory(item: str, cap: int) -> str:
    key, value = item.split("=", 1)
    return f"{key}={min(int(value), cap)}" if key == "mem_mb" else item


def run_snakemake(cluster: SlurmCluster, *args: str, cwd: Path) -> str:
    """Run Snakemake to the end (or fail with its output); return its output."""
    cwd.mkdir(parents=True, exist_ok=True)
    # Rules call the `stnbench` command: as in an activated virtual environment, whose PATH
    # sbatch passes on to the jobs.
    env = {
        **cluster.env,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    # Its own session, so that a run that overstays or is interrupted is stopped with all its
    # local jobs; its Slurm jobs are cancelled with the cluster.
    with subprocess.Popen(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=WORKFLOW_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(
                f"snakemake gave no result within {WORKFLOW_TIMEOUT_S} s\n"
                f"{output}\n{cluster.log_tails()}"
            )
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, f"{output}\n{cluster.log_tails()}"
    return output


def slurm_jobs(cluster: SlurmCluster, snakemake_output: str) -> dict[str, dict[str, str]]:
    """The Slurm jobs Snakemake submitted, by job id, as Slurm recorded them."""
    ids = re.findall(r"submitted with SLURM jobid (\d+)", snakemake_output)
    assert ids, f"no job went through sbatch:\n{snakemake_output}"
    return {job_id: cluster.job(job_id) for job_id in ids}


def rule_of(job: dict[str, str]) -> str:
    # The plugin files each job under the comment rule_<name>[_wildcards_<values>].
    return re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)


def requests_gpu(job: dict[str, str]) -> bool:
    return "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", "")


def assert_ran_on_cluster(cluster: SlurmCluster, jobs: dict[str, dict[str, str]]) -> None:
    slurmd_log = cluster.log("slurmd")
    for job_id, job in jobs.items():
        assert job["JobState"] == "COMPLETED", job
        assert f"Launching batch job {job_id} " in slurmd_log


def test_jobs_go_through_sbatch_and_slurmd(cluster: SlurmCluster, tmp_path: Path) -> None:
    """The cluster and the plugin on a two-job workflow: a GPU job, then a CPU job."""
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "cpu.txt"\n'
        'rule gpu_job:\n    output: "gpu.txt"\n    resources: gpu=1\n'
        '    shell: "echo $SLURM_JOB_ID > {output}"\n'
        'rule cpu_job:\n    input: "gpu.txt"\n    output: "cpu.txt"\n'
        '    shell: "echo $SLURM_JOB_ID > {output}"\n'
    )
    profile = cluster_profile(cluster, tmp_path / "profile")
    output = run_snakemake(
        cluster, "--profile", str(profile), "--workflow-profile", "none", cwd=tmp_path
    )
    jobs = slurm_jobs(cluster, output)
    assert_ran_on_cluster(cluster, jobs)
    ran = {rule_of(job): job_id for job_id, job in jobs.items()}
    assert ran.keys() == {"gpu_job", "cpu_job"}
    for rule, job_id in ran.items():
        assert (tmp_path / f"{rule.removesuffix('_job')}.txt").read_text().strip() == job_id
        assert requests_gpu(jobs[job_id]) == (rule == "gpu_job")


def grid_config(data_dir: Path) -> dict:
    """The tiny preset cut to one MNIST cell of the ST model, training on the CPU.

    Every Slurm job pays a submission and status polls, and each stage of the workflow one
    more round: the grid is cut to keep the test within minutes. Bench jobs ask for their
    GPU the way training jobs do. On the CPU, training is bit-reproducible, so the two runs
    can be compared exactly.
    """
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    mnist = config["experiments"]["distorted-mnist"]
    config["experiments"] = {
        "distorted-mnist": {**mnist, "models": ["st-cnn-affine"], "seeds": 1, "viz": []}
    }
    config["bench"]["enabled"] = False
    config.update(data_dir=str(data_dir), device="cpu")
    return config


def run_results(workdir: Path, config: dict) -> dict[str, tuple[dict, dict]]:
    """Every run's reproducible metrics and its predictions, by run folder name."""
    runs = workdir / config["results_dir"] / "runs"
    results = {}
    for metrics_path in sorted(runs.glob("*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        kept = {key: value for key, value in metrics.items() if key not in NOT_COMPARED}
        kept["history"] = [
            {key: value for key, value in epoch.items() if key not in NOT_COMPARED}
            for epoch in metrics["history"]
        ]
        with np.load(metrics_path.parent / "predictions.npz") as predictions:
            arrays = {name: predictions[name].tolist() for name in predictions.files}
        results[metrics_path.parent.name] = (kept, arrays)
    return results


def test_grid_on_slurm_equals_local_run(
    cluster: SlurmCluster, tmp_path: Path, data_dir: Path
) -> None:
    config_path = tmp_path / "grid.yaml"
    config = grid_config(data_dir)
    config_path.write_text(yaml.safe_dump(config))
    profile = cluster_profile(cluster, tmp_path / "profile")
    threads = yaml.safe_load((profile / "profile.yaml").read_text())["set-threads"]
    workflow = [
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        str(config_path),
        "--workflow-profile",
        "none",
    ]

    output = run_snakemake(cluster, *workflow, "--profile", str(profile), cwd=tmp_path / "slurm")
    jobs = slurm_jobs(cluster, output)  # before Slurm forgets them (MinJobAge)
    run_snakemake(
        cluster,
        *workflow,
        "--cores",
        str(cluster.cpus),
        "--set-threads",
        *(f"{rule}={n}" for rule, n in threads.items()),
        cwd=tmp_path / "local",
    )

    assert_ran_on_cluster(cluster, jobs)
    rules = {rule_of(job) for job in jobs.values()}
    assert {"train", "gallery", "aggregate"} <= rules, rules
    for job in jobs.values():
        assert requests_gpu(job) == (rule_of(job) in GPU_RULES), job
        if rule_of(job) in threads:
            assert job["NumCPUs"] == str(threads[rule_of(job)]), job

    on_slurm = run_results(tmp_path / "slurm", config)
    assert len(on_slurm) == 1
    assert on_slurm == run_results(tmp_path / "local", config)
