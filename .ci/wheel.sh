#!/usr/bin/env bash
# CI: builds the `happyrobot` wheel with maturin, installs it with pip into a fresh virtual
# environment, and runs the command from there with no Rust toolchain on the PATH (the way people
# without Rust get it: `pipx install happyrobot-cli`).
#
#   bash .ci/wheel.sh                        # CI's build: the dev profile (see below)
#   WHEEL_PROFILE=release bash .ci/wheel.sh  # the release build that is published (LTO, stripped)
#
# CI builds the wheel with the dev profile: it reuses what the test step compiled, so the step
# costs about a minute, where the release profile's fat LTO and single codegen unit rebuild
# everything (4 minutes on two cores, BENCHMARKS.md). What is checked, that the wheel installs and
# its command runs without Rust, does not depend on the profile; the release wheel's size is
# measured with WHEEL_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${WHEEL_PROFILE:-dev}
# The same build settings as .ci/run, so that a dev build reuses the test step's.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

maturin_version=1.16.0
maturin_venv=target/ci-maturin-venv
# A cached venv is used only when it holds the pinned version.
if ! "$maturin_venv/bin/maturin" --version 2>/dev/null | grep -qF " $maturin_version"; then
  rm -rf "$maturin_venv"
  bash .ci/python-venv.sh "$maturin_venv" "maturin==$maturin_version"
fi

version=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "happyrobot-cli"))')

out=target/ci-wheel
rm -rf "$out"
if [ "$profile" = release ]; then
  profile_args=(--release)
else
  profile_args=(--profile "$profile")
fi
"$maturin_venv/bin/maturin" build "${profile_args[@]}" --locked \
  --manifest-path crates/happyrobot-cli/Cargo.toml --out "$out"
wheels=("$out"/happyrobot_cli-"$version"-*.whl)
if [ "${#wheels[@]}" != 1 ] || [ ! -f "${wheels[0]}" ]; then
  echo "wheel.sh: expected one happyrobot_cli-$version-*.whl in $out, found: $(ls "$out")" >&2
  exit 1
fi
wheel=${wheels[0]}
echo "wheel: $wheel ($(wc -c <"$wheel") bytes)"

# A fresh environment each time, with the wheel installed by pip (from the file: no index).
venv=target/ci-wheel-venv
bash .ci/python-venv.sh "$venv" "$wheel"
bin="$PWD/$venv/bin"

# The command runs with only the environment's scripts on the PATH (no cargo, no rustc, whatever
# the machine has in /usr/bin), a home of its own (no stored key, no journal index) and no key.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
run() {
  env -i PATH="$bin" HOME="$home" XDG_CONFIG_HOME="$home/config" XDG_STATE_HOME="$home/state" \
    LANG=C.UTF-8 "$@"
}
if run "$BASH" -c 'command -v cargo || command -v rustc'; then
  echo "wheel.sh: Rust is on the PATH the wheel is tested with" >&2
  exit 1
fi
[ "$(run "$BASH" -c 'command -v happyrobot')" = "$bin/happyrobot" ]

set -x
run happyrobot --version | grep -Fx "happyrobot $version"
run happyrobot --mock notes add 65f1c0ffee0123456789abcd --content "from the wheel" |
  grep -F "| from the wheel"
calls=$(run happyrobot --mock calls list --limit 3)
[ "$(wc -l <<<"$calls")" = 4 ] # the header and 3 calls
# Not `grep -q`: it would close the pipe early, and pipefail would see the command's failed write.
run happyrobot completions bash | grep -F "complete -F" >/dev/null
