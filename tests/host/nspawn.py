"""A throwaway Debian 12 host under systemd-nspawn: systemd as PID 1, its own network namespace,
reached over SSH on a veth pair. The debootstrap root filesystem is cached outside the checkout.

The image holds the Debian packages the roles install (so the host needs no mirror); Python
packages come from a wheelhouse the test prepares.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cached_build import CACHE_DIR

SUITE = "bookworm"
MIRROR = os.environ.get("SYNAPSCRIBE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# systemd and SSH for the host itself, then what the roles install with apt (base_packages,
# tts_packages): present already, so `state: present` finds them without a mirror.
PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,sudo,python3,python3-venv,python3-packaging,"
    "iproute2,curl,ca-certificates,systemd-timesyncd,unattended-upgrades,espeak-ng,ffmpeg"
)


class HostBootError(RuntimeError):
    """The nspawn host could not be built, booted or reached."""


def _run(*cmd: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise HostBootError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def rootfs_tarball() -> Path:
    """The cached debootstrap tarball, built on first use (about two minutes)."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {PACKAGES}".encode()).hexdigest()[:12]
    tarball = CACHE_DIR / f"rootfs-{SUITE}-{key}.tar"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"rootfs-{SUITE}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if not tarball.exists():
            _debootstrap(tarball)
    return tarball


def _debootstrap(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise HostBootError("debootstrap is not installed (scripts/setup installs it)")
    build = tarball.with_suffix(".build")
    _remove_tree(build)
    _run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(build), MIRROR, timeout=1200)
    partial = tarball.with_suffix(".partial")
    _run("tar", "-C", str(build), "-cf", str(partial), ".")
    partial.rename(tarball)
    _remove_tree(build)


def _remove_tree(path: Path) -> None:
    """Delete a (partial) root filesystem, unmounting what an interrupted debootstrap left mounted."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=False)
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class NspawnHost:
    """One booted container; `address` answers SSH with `key` as root."""

    name: str
    root: Path
    key: Path
    subnet: int
    process: subprocess.Popen[bytes] | None = None
    console: Path = field(init=False)

    def __post_init__(self) -> None:
        self.console = self.root.parent / f"{self.name}.console.log"

    @property
    def address(self) -> str:
        return f"10.231.{self.subnet}.2"

    @property
    def host_address(self) -> str:
        return f"10.231.{self.subnet}.1"

    @property
    def veth(self) -> str:
        return f"ve-{self.name}"[:15]

    def ssh_command(self, *remote: str) -> list[str]:
        return [
            "ssh", "-i", str(self.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3",
            f"root@{self.address}", *remote,
        ]  # fmt: skip

    def ssh(self, *remote: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh_command(*remote), capture_output=True, text=True, timeout=timeout, check=False
        )

    def prepare(self, tarball: Path) -> None:
        self.root.mkdir(parents=True)
        _run("tar", "-C", str(self.root), "-xf", str(tarball))
        ssh_dir = self.root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        (self.root / "etc" / "hostname").write_text(f"{self.name}\n")
        self._age_apt_cache()
        # sudo resolves the host name; without this it waits for a DNS server the host cannot reach.
        (self.root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        network = self.root / "etc" / "systemd" / "network"
        network.mkdir(parents=True, exist_ok=True)
        # Sorts before systemd's 80-container-host0.network, which would take a link-local address.
        (network / "10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={self.address}/24\nGateway={self.host_address}\n"
        )
        wants = self.root / "etc" / "systemd" / "system" / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "systemd-networkd.service"
        if not link.exists():
            link.symlink_to("/lib/systemd/system/systemd-networkd.service")

    def _age_apt_cache(self) -> None:
        """Make the apt lists a week old, as on a tarball kept in a cache, whatever the tarball's age.

        The host has no route to the mirrors, so a role that refreshes a stale cache fails here every
        time rather than only when the cached root filesystem happens to be older than an hour.
        """
        week_ago = time.time() - 7 * 24 * 3600
        for path in (
            self.root / "var/lib/apt/lists",
            self.root / "var/lib/apt/periodic/update-success-stamp",
        ):
            if path.exists():
                os.utime(path, (week_ago, week_ago))

    def boot(self, timeout: float = 90) -> None:
        if shutil.which("systemd-nspawn") is None:
            raise HostBootError("systemd-nspawn is not installed (package systemd-container)")
        with self.console.open("wb") as console:
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "-b", "-D", str(self.root),
                 "-M", self.name, "--network-veth"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not _link_exists(self.veth):
            self._check_alive(deadline)
        _run("ip", "addr", "replace", f"{self.host_address}/24", "dev", self.veth)
        _run("ip", "link", "set", self.veth, "up")
        while True:
            self._check_alive(deadline)
            proc = self.ssh("systemctl", "is-system-running", "--wait", timeout=30)
            if proc.stdout.strip() in ("running", "degraded"):
                return

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise HostBootError(f"systemd-nspawn exited {self.process.returncode}:\n{self.console_tail()}")
        if time.monotonic() > deadline:
            raise HostBootError(f"host {self.name} not reachable over SSH in time:\n{self.console_tail()}")
        time.sleep(0.5)

    def console_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.ssh("systemctl", "poweroff", "--no-block", timeout=10).returncode != 0:
            # No SSH (the bake's cleanup removed the keys): nspawn turns SIGTERM into an orderly
            # shutdown of the container (systemd-nspawn(1), --kill-signal).
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True, check=False).returncode == 0


def free_subnet() -> int:
    """A 10.231.N.0/24 no interface on this machine uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    for n in range(10, 250):
        if f"10.231.{n}." not in used:
            return n
    raise HostBootError("no free 10.231.N.0/24 subnet for the veth pair")


def can_boot() -> str | None:
    """Why this machine cannot run the host test, or None."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, veth)"
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup installs it)"
    return None
