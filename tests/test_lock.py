"""The locks in requirements/: every pin exact and hashed, the runtime lock in step with the dev
lock, and both holding what pyproject.toml asks for (the workflows install runtime.txt with no
index, so a dependency it lacks would only fail there)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PIN = re.compile(r"([a-z0-9][a-z0-9._-]*)==(\S+) \\", re.IGNORECASE)
HASH = re.compile(r" {4}--hash=sha256:[0-9a-f]{64}( \\)?")


def pins(name: str) -> dict[str, tuple[Version, int]]:
    """Each package of a lock with its version and how many hashes it lists."""
    found: dict[str, tuple[Version, int]] = {}
    package = ""
    for line in (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line:
            continue
        pin = PIN.fullmatch(line)
        if pin is not None:
            package = canonicalize_name(pin.group(1))
            found[package] = (Version(pin.group(2)), 0)
        else:
            assert HASH.fullmatch(line), f"{name}: neither a pin nor a hash: {line!r}"
            version, hashes = found[package]
            found[package] = (version, hashes + 1)
    return found


def unmet(lock: dict[str, tuple[Version, int]], requirements: list[str]) -> list[str]:
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = lock.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned[0], prereleases=True):
            missing.append(text)
    return missing


def test_every_package_is_pinned_to_one_version_with_its_hashes() -> None:
    for name in ("runtime.txt", "dev.txt"):
        lock = pins(name)
        assert lock, name
        assert [package for package, (_, hashes) in lock.items() if hashes == 0] == [], name


def test_the_runtime_lock_has_the_dev_locks_versions() -> None:
    runtime, dev = pins("runtime.txt"), pins("dev.txt")
    assert set(runtime) <= set(dev)
    assert {p: v for p, (v, _) in runtime.items()} == {p: dev[p][0] for p in runtime}


def test_the_locks_hold_what_pyproject_asks_for_and_the_build_backend() -> None:
    project = PROJECT["project"]
    runtime = [*project["dependencies"], *PROJECT["build-system"]["requires"]]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    assert unmet(pins("runtime.txt"), runtime) == []
    assert unmet(pins("dev.txt"), [*runtime, *extras]) == []
