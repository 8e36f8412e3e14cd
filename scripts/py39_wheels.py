"""Download, on the host, every wheel the bullseye python3.9 chroot needs.

Inside the chroot pip cannot verify the registry's certificate, so the chroot installs
with `--no-index --find-links` from the wheelhouse made here. `pip download
--python-version 3.9` picks wheels for 3.9 but evaluates dependency markers against the
interpreter running pip (3.11 here), so a dependency gated by `python_version < "3.11"`
(tomli, exceptiongroup) would be missing: the loop below reads each wheel's
Requires-Dist, evaluates the markers for the target, and downloads what is missing
until nothing is.

    python scripts/py39_wheels.py --arch amd64 --cache /var/cache/simpul

prints the wheelhouse's path. It is cached under a name that hashes the requirement
list and the platform, so a second run downloads nothing; a change to pyproject.toml's
lists makes a new one.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Dict, List, Set

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the host runs 3.11
    import tomli as tomllib

FORMAT = "1"  # bump to force new wheelhouses
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
# What the agent and the bridge import: the agent extra, the field extra's pieces that
# firmware_bridge uses (not httpx: that is the field CLI's fleet side), the test tools.
PICK = {"field": {"intelhex", "tqdm"}, "dev": {"pytest", "pytest-timeout", "hypothesis"}}
# No wheel on PyPI; their setup.py installs pure Python when no compiler is there,
# which is the case in the chroot.
SDIST_ONLY = {"crcmod"}


def target_env(arch: str) -> Dict[str, str]:
    env: Dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(python_version="3.9", python_full_version="3.9.2", implementation_name="cpython",
               platform_python_implementation="CPython", sys_platform="linux",
               platform_system="Linux", os_name="posix", platform_machine=ARCHES[arch])
    return env


def applies(req: Requirement, env: Dict[str, str], extras: Set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in extras | {""})


def top_requirements(pyproject: Path, env: Dict[str, str]) -> List[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    raw = list(project["dependencies"]) + list(extras["agent"])
    for extra, names in PICK.items():
        raw += [r for r in extras[extra] if canonicalize_name(Requirement(r).name) in names]
    reqs = [Requirement(r) for r in raw]
    return [r for r in reqs if canonicalize_name(r.name) != "simpul" and applies(r, env, set())]


def spec(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def pip_download(reqs: List[Requirement], dest: Path, arch: str) -> None:
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "-d", str(dest)]
    binary = [r for r in reqs if canonicalize_name(r.name) not in SDIST_ONLY]
    source = [r for r in reqs if canonicalize_name(r.name) in SDIST_ONLY]
    if binary:
        machine = ARCHES[arch]
        subprocess.run(base + ["--only-binary=:all:", "--python-version", "3.9",
                               "--implementation", "cp", "--abi", "cp39",
                               "--platform", f"manylinux2014_{machine}",
                               "--platform", f"manylinux_2_28_{machine}"]
                       + [spec(r) for r in binary], check=True)
    if source:
        subprocess.run(base + ["--no-binary=:all:", "--no-deps"] + [spec(r) for r in source],
                       check=True)


def have(dest: Path) -> Dict[str, Version]:
    found: Dict[str, Version] = {}
    for f in dest.iterdir():
        if f.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(f.name)
        elif f.name.endswith(".tar.gz"):
            name, version = parse_sdist_filename(f.name)
        else:
            continue
        found[name] = version
    return found


def requires(wheel: Path) -> List[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(meta).decode())
    return [Requirement(r) for r in msg.get_all("Requires-Dist") or []]


def missing(dest: Path, top: List[Requirement], env: Dict[str, str]) -> List[Requirement]:
    """Requirements (top level and of every wheel) for the target that nothing satisfies."""
    found = have(dest)
    wanted: Dict[str, Set[str]] = {}
    for r in top:
        wanted.setdefault(canonicalize_name(r.name), set()).update(r.extras)
    out: List[Requirement] = []
    checked: List[Requirement] = list(top)
    for f in dest.glob("*.whl"):
        name = parse_wheel_filename(f.name)[0]
        checked += [r for r in requires(f) if applies(r, env, wanted.get(name, set()))]
    for r in checked:
        name = canonicalize_name(r.name)
        if name not in found:
            out.append(r)
        elif not r.specifier.contains(found[name], prereleases=True):
            raise SystemExit(f"py39 wheels: {name} {found[name]} does not satisfy {r}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(ARCHES), default="amd64")
    p.add_argument("--cache", type=Path, default=Path("/var/cache/simpul"))
    p.add_argument("--pyproject", type=Path,
                   default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    args = p.parse_args()
    env = target_env(args.arch)
    top = top_requirements(args.pyproject, env)
    key = "\n".join([FORMAT, args.arch, *sorted(spec(r) for r in top)])
    house = args.cache / f"wheels-py39-{args.arch}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (house / "requirements.txt").exists():
        args.cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=house.name + ".", dir=args.cache))
        try:
            todo = top
            for _ in range(10):
                pip_download(todo, tmp, args.arch)
                todo = missing(tmp, top, env)
                if not todo:
                    break
            else:
                raise SystemExit(f"py39 wheels: still missing {todo}")
            # Written last: its presence says the wheelhouse is complete.
            (tmp / "requirements.txt").write_text("".join(spec(r) + "\n" for r in top))
            tmp.chmod(0o755)
            if house.exists():  # another run finished first
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, house)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(house)
    return 0


if __name__ == "__main__":
    sys.exit(main())
