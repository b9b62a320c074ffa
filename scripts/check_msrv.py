#!/usr/bin/env python3
"""The declared MSRV is the one the lockfile really needs.

Reads `cargo metadata --locked` and fails unless the package's `rust-version` equals the highest
`rust-version` among the locked crates it builds with (dependencies, dev-dependencies and
build-dependencies of every feature). Run from the repository root: `python3 scripts/check_msrv.py`.
"""
import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in v.split("."))[:3] + (0,) * (3 - len(v.split(".")))


def main():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"],
        check=True, capture_output=True, text=True).stdout)
    root = meta["resolve"]["root"]
    used = {n["id"] for n in meta["resolve"]["nodes"]}
    packages = {p["id"]: p for p in meta["packages"] if p["id"] in used}
    declared = packages[root].get("rust_version")
    if not declared:
        sys.exit("Cargo.toml declares no rust-version")
    needed = max((p for i, p in packages.items() if i != root and p.get("rust_version")),
                 key=lambda p: version(p["rust_version"]))
    if version(needed["rust_version"]) != version(declared):
        sys.exit(f"Cargo.toml declares rust-version {declared}, but the locked crates need "
                 f"{needed['rust_version']} ({needed['name']} {needed['version']})")
    print(f"rust-version {declared}: the highest any locked crate needs ({needed['name']} {needed['version']})")


if __name__ == "__main__":
    main()
