"""A throwaway single-node Slurm cluster for tests.

Installs Debian's ``slurm-wlm`` and ``munge`` when they are missing (root only), then runs
munged, slurmctld and slurmd in the foreground as children of this process, with every file
(configuration, munge key and socket, state, spool, logs) in one temporary folder and on free
ports, so that it never touches a Slurm or munge the machine may already run. The node
advertises one fake GPU (``gres/gpu`` backed by ``/dev/null``) so that GPU requests schedule.
There is no systemd: the daemons are started and stopped here, also when a test fails.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"
# Snakemake's Slurm jobstep executor strips SLURM_CONF from the environment of the srun it
# starts inside each job, so that srun reads the configuration from the compiled-in default
# path only: the cluster links its configuration there while it runs.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
TMP_PREFIX = "stnbench-slurm-"


def unavailable_reason() -> str | None:
    """Make Slurm and munge available; return why the cluster cannot run (a skip reason)."""
    if os.geteuid() != 0:
        return "a Slurm cluster needs root: to install it, run its daemons and link its config"
    if DEFAULT_CONF.exists() and not _is_ours(DEFAULT_CONF):
        return f"{DEFAULT_CONF} belongs to a Slurm installation this test must not replace"
    return _install_reason()


def _is_ours(path: Path) -> bool:
    return path.is_symlink() and os.readlink(path).startswith(
        os.path.join(tempfile.gettempdir(), TMP_PREFIX)
    )


def _install_reason() -> str | None:
    if all(shutil.which(tool) for tool in (*DAEMONS, *CLIENTS)):
        return None
    if shutil.which("apt-get") is None:
        return "Slurm is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    # Package scripts would otherwise start a system munged and slurmd on machines without
    # systemd; policy-rc.d is Debian's switch for "start no daemon during installation".
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            # A fresh machine has empty package lists.
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
            result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "apt-get could not install slurm-wlm and munge within 10 minutes"
    finally:
        if own_policy:
            policy.unlink()
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        return f"apt-get could not install slurm-wlm and munge: {' '.join(last)}"
    missing = [tool for tool in (*DAEMONS, *CLIENTS) if shutil.which(tool) is None]
    return f"installed Slurm lacks {', '.join(missing)}" if missing else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # The daemons must not outlive a test run that is killed outright (where neither finally
    # nor atexit runs); PR_SET_PDEATHSIG is Linux's way to tie a child's life to its parent.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class SlurmCluster:
    """One node, one partition, no accounting database, jobs run as the calling user."""

    def __init__(self, node_timeout_s: float = 60.0) -> None:
        self.node_timeout_s = node_timeout_s
        self.root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        self.conf = self.root / "slurm.conf"
        self.log_dir = self.root / "log"
        self.node = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._procs: list[subprocess.Popen] = []
        self.cpus = self.memory_mb = 0  # the node's, known once started

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        atexit.register(self.stop)
        self.root.chmod(0o755)
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(mode=0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._write_config()
        if DEFAULT_CONF.exists() and not _is_ours(DEFAULT_CONF):
            raise RuntimeError(f"{DEFAULT_CONF} belongs to another Slurm installation")
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        # What is left there is a link from a run that was killed outright.
        DEFAULT_CONF.unlink(missing_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        munge_dir = self.root / "munge"
        self._spawn(
            "munged",
            "--foreground",
            f"--socket={munge_dir / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
        )
        self._wait_for(lambda: (munge_dir / "munge.socket").exists(), "munged's socket")
        self._spawn("slurmctld", "-D", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf))
        self._wait_for(lambda: self.node_state() == "idle", f"node {self.node} to be idle")

    def stop(self) -> None:
        """Cancel every job, stop the daemons started here, delete the folder. Idempotent."""
        atexit.unregister(self.stop)
        if any(proc.poll() is None for proc in self._procs):
            self._cancel_all_jobs()
        # slurmd before slurmctld before munged: each needs the next one to shut down cleanly.
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        if _is_ours(DEFAULT_CONF) and os.readlink(DEFAULT_CONF) == str(self.conf):
            DEFAULT_CONF.unlink()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- queries ----------------------------------------------------------------------------
    def command(self, *args: str, timeout: float = 30) -> str:
        """Run a Slurm client command against this cluster and return its stdout."""
        result = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=True
        )
        return result.stdout

    def node_state(self) -> str:
        try:
            return self.command("sinfo", "--noheader", "--Node", "--format=%T").strip()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return ""

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (kept for MinJobAge seconds after the job ends)."""
        text = self.command("scontrol", "--oneliner", "show", "job", job_id)
        fields = {}
        for token in text.split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def log(self, daemon: str) -> str:
        """A daemon's log file, or its captured output where it has none (munged)."""
        for path in (self.log_dir / f"{daemon}.log", self.log_dir / f"{daemon}.out"):
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")
        return ""

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(
            f"--- {daemon}.log ---\n" + "\n".join(self.log(daemon).splitlines()[-lines:])
            for daemon in DAEMONS
        )

    # -- internals --------------------------------------------------------------------------
    def _write_config(self) -> None:
        # `slurmd -C` prints this machine's NodeName line (CPUs, sockets, cores, RealMemory):
        # a node declared bigger than the hardware would be drained at registration.
        hardware = subprocess.run(
            ["slurmd", "-C"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()[0]
        fields = dict(f.split("=", 1) for f in hardware.split())
        self.cpus, self.memory_mb = int(fields.pop("CPUs")), int(fields.pop("RealMemory"))
        del fields["NodeName"]
        node_line = " ".join(f"{key}={value}" for key, value in fields.items())
        root = self.root
        settings = {
            "ClusterName": "stnbench",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
            "CredType": "cred/munge",
            "StateSaveLocation": root / "state",
            "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "slurmctld.pid",
            "SlurmdPidFile": root / "slurmd.pid",
            "SlurmctldLogFile": self.log_dir / "slurmctld.log",
            "SlurmdLogFile": self.log_dir / "slurmd.log",
            # No cgroups: containers and CI machines rarely let a daemon manage them.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            # No slurmdbd, so sacct knows nothing: job status comes from squeue, which keeps
            # finished jobs for MinJobAge seconds.
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/none",
            "MinJobAge": 600,
            "SchedulerType": "sched/backfill",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            "GresTypes": "gpu",
            "MpiDefault": "none",
            "ReturnToService": 2,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines.append(
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} {node_line} Gres=gpu:1 State=UNKNOWN"
        )
        lines.append(
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP"
        )
        self.conf.write_text("\n".join(lines) + "\n")
        (root / "gres.conf").write_text(f"NodeName={self.node} Name=gpu File=/dev/null\n")

    def _spawn(self, *args: str) -> None:
        with open(self.log_dir / f"{args[0]}.out", "ab") as log:
            proc = subprocess.Popen(
                args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(proc)

    def _wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.node_timeout_s
        while time.monotonic() < deadline:
            dead = [proc.args[0] for proc in self._procs if proc.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"{', '.join(dead)} exited while waiting for {what}\n" + self.log_tails()
                )
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"gave up after {self.node_timeout_s:.0f} s waiting for {what}\n" + self.log_tails()
        )

    def _cancel_all_jobs(self) -> None:
        try:
            self.command("scancel", "--full", f"--partition={PARTITION}")
            deadline = time.monotonic() + 20
            while (
                time.monotonic() < deadline
                and self.command(
                    "squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING,CONFIGURING"
                ).strip()
            ):
                time.sleep(0.5)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
