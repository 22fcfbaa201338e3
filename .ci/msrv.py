"""Fails when a package of the lock file declares a rust-version newer than the workspace's.

Reads `cargo metadata --format-version 1` on stdin. Only one toolchain can be installed on the CI
machines, so this and clippy's `incompatible_msrv` lint are what stand for a build with Rust 1.88.
"""

import json
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


metadata = json.load(sys.stdin)
members = set(metadata["workspace_members"])
workspace = {p["rust_version"] for p in metadata["packages"] if p["id"] in members and p.get("rust_version")}
if len(workspace) != 1:
    sys.exit(f"the workspace's crates should share one rust-version, found {sorted(workspace)}")
(msrv,) = workspace
newer = sorted(
    f'{p["name"]} {p["version"]} needs Rust {p["rust_version"]}'
    for p in metadata["packages"]
    if p.get("rust_version") and version(p["rust_version"]) > version(msrv)
)
if newer:
    sys.exit(f"dependencies newer than the minimum Rust version {msrv}:\n  " + "\n  ".join(newer)
             + "\nPin an older version (cargo update -p NAME --precise VERSION) or raise rust-version.")
print(f"every locked package builds with Rust {msrv}")
