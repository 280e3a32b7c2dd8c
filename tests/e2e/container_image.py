"""Building the Dockerfile's image here, where no registry image can be pulled and a build has
no package index (ENVIRONMENT.md, "containers"): podman pointed at a config this module writes,
a base image made from the machine's own Debian mirror with debootstrap, and the dependencies'
wheels made on the host for the base image's Python. The base image and the wheels are cached
under ~/.cache/r2c-test-images (R2C_TEST_IMAGE_CACHE), keyed by what they are made from, and
made again only when missing: debootstrap takes about a minute, the wheels half of one.
"""

from __future__ import annotations

import contextlib
import email.parser
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("R2C_TEST_IMAGE_CACHE", Path.home() / ".cache" / "r2c-test-images"))
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,ca-certificates"

# podman's settings for this machine (ENVIRONMENT.md): runc, and ulimits a container can get.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
"""


class ImageBuildError(AssertionError):
    """Something this machine needs to build or run the image is missing or broke; the
    message says what, and the test fails with it (never skips)."""


@dataclass(frozen=True)
class Podman:
    """podman on its own storage (cached: the base image and the build's layers stay) and
    config; nothing of the machine's own podman setup is used or needed."""

    root: Path
    runroot: Path
    conf: Path

    @classmethod
    def make(cls) -> Podman:
        if shutil.which("podman") is None:
            raise ImageBuildError("podman is not installed (apt-get install podman runc)")
        CACHE.mkdir(parents=True, exist_ok=True)
        conf = CACHE / "containers.conf"
        if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
            conf.write_text(CONTAINERS_CONF)
        key = hashlib.sha256(str(CACHE).encode()).hexdigest()[:12]
        runroot = Path(tempfile.gettempdir()) / f"r2c-podman-run-{key}"
        return cls(CACHE / "storage", runroot, conf)

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.runroot), *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            env=self.env(),
            capture_output=True,
            text=stdin is None,
            input=stdin,
            timeout=timeout,
            check=False,
        )
        if isinstance(done.stdout, bytes):
            done = subprocess.CompletedProcess(
                done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
            )
        if check and done.returncode != 0:
            raise ImageBuildError(
                f"`podman {' '.join(args[:3])} ...` failed ({done.returncode}):\n"
                f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
            )
        return done

    def exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One maker at a time of a cached thing (two test runs may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 .sources files or sources.list)."""
    apt = Path("/etc/apt")
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for block in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in block.splitlines() if re.match(r"^[A-Za-z-]+:", line)
            )
            if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", ""):
                return fields["URIs"].split()[0]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1]
    raise ImageBuildError(f"no Debian {SUITE} mirror in /etc/apt/sources.list*")


@dataclass(frozen=True)
class BaseImage:
    tag: str
    python: str  # its python3's full version, e.g. 3.11.2


def base_image(podman: Podman) -> BaseImage:
    """`localhost/r2c-base:bookworm-<key>`: debootstrap's minbase with python3, imported;
    made only when the cached storage does not hold it yet."""
    mirror = apt_mirror()
    key = hashlib.sha256(f"{SUITE}|minbase|{PACKAGES}|{mirror}".encode()).hexdigest()[:12]
    tag = f"localhost/r2c-base:{SUITE}-{key}"
    with _locked("base"):
        if not podman.exists(tag):
            _debootstrap_and_import(podman, mirror, tag)
    version = podman.run(
        "run", "--rm", "--network", "none", tag, "python3", "-c",
        "import platform; print(platform.python_version())",
    ).stdout.strip()  # fmt: skip
    return BaseImage(tag, version)


def _debootstrap_and_import(podman: Podman, mirror: str, tag: str) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root to make the base image's file system")
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix="rootfs-"))
    rootfs = tmp / "rootfs"
    try:
        made = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(rootfs),
             mirror],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            raise ImageBuildError(f"debootstrap from {mirror} failed:\n{made.stdout[-3000:]}")
        tar = subprocess.run(
            ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True, timeout=300
        )
        podman.run("import", "-", tag, stdin=tar.stdout, timeout=300)
    finally:
        if _unmount_below(rootfs):
            shutil.rmtree(tmp, ignore_errors=True)


def _unmount_below(rootfs: Path) -> bool:
    """debootstrap mounts /proc (and maybe /sys, /dev) in the new root while it configures
    packages, and unmounts them when it ends; if it was killed, they are still there, and
    deleting the folder must never reach into them. True when none is left."""
    prefix = str(rootfs.resolve()) + "/"

    def mounted() -> list[str]:
        lines = Path("/proc/self/mounts").read_text().splitlines()
        return [p for p in (line.split()[1] for line in lines) if p.startswith(prefix)]

    for point in sorted(mounted(), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    return not mounted()


def dependency_wheels(base: BaseImage) -> Path:
    """A folder with wheels of every dependency and of the build backend, for the base
    image's Python: made by the host's pip (the same minor version is required: the wheels'
    ABI), then completed with what the image's exact version needs and the host's does not
    (requirements whose markers name python_full_version)."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if ".".join(base.python.split(".")[:2]) != host:
        raise ImageBuildError(
            f"the base image's Python is {base.python}, the host's {platform.python_version()}:"
            " wheels built here would not fit it"
        )
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    key = hashlib.sha256("\n".join([base.python, host, *wanted]).encode()).hexdigest()[:12]
    folder = CACHE / f"wheels-{key}"
    with _locked("wheels"):
        if (folder / ".complete").is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix="wheels-tmp-"))
        _pip_wheel(tmp, wanted)
        for _ in range(5):
            missing = missing_requirements(tmp, wanted, base.python)
            if not missing:
                break
            _pip_wheel(tmp, missing)
        else:
            raise ImageBuildError(f"wheels still missing for {base.python}: {missing}")
        (tmp / ".complete").write_text("\n".join(wanted) + "\n")
        tmp.rename(folder)
    return folder


def _pip_wheel(folder: Path, requirements: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(folder),
         *requirements],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ImageBuildError(f"pip wheel failed:\n{done.stderr[-3000:]}")


def missing_requirements(folder: Path, top: list[str], python: str) -> list[str]:
    """Requirements the wheels in `folder` leave unmet on Python `python` (Linux, as here):
    the dependency tree walked from `top` with markers evaluated for that version."""
    env: dict[str, str] = dict(default_environment())
    env.update(python_full_version=python, python_version=".".join(python.split(".")[:2]))
    have: dict[str, tuple[str, list[str]]] = {}
    for wheel in folder.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        with zipfile.ZipFile(wheel) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            parsed = email.parser.Parser().parsestr(archive.read(meta).decode())
        have[name] = (str(version), parsed.get_all("Requires-Dist") or [])
    missing: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(Requirement(r), frozenset({""})) for r in top]
    while queue:
        req, parent_extras = queue.pop()
        if req.marker is not None and not any(
            req.marker.evaluate({**env, "extra": extra}) for extra in parent_extras
        ):
            continue
        name = canonicalize_name(req.name)
        extras = frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in have or not req.specifier.contains(have[name][0], prereleases=True):
            req.marker = None
            missing.append(str(req))
            continue
        queue += [(Requirement(dep), extras | {""}) for dep in have[name][1]]
    return missing


def build_context(wheels: Path, into: Path) -> Path:
    """The repository's files (tracked and new, not ignored: no .venv, no state) and the
    wheels, as the build context; the Dockerfile's .dockerignore applies on top."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    # Folders 0700, as a checkout made under umask 077 has them: the image must not depend
    # on the builder's umask (nor on the one the test process was left with).
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = into / name
            for folder in reversed([*target.relative_to(into).parents][:-1]):
                (into / folder).mkdir(mode=0o700, exist_ok=True)
                os.chmod(into / folder, 0o700)
            shutil.copy2(source, target)
    for wheel in wheels.glob("*.whl"):
        target = into / "wheels" / wheel.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(wheel, target)  # same file system: no 160 MB copy
        except OSError:
            shutil.copy2(wheel, target)
    return into
