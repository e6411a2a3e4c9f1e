#!/usr/bin/env bash
# Gradescope autograder setup for attnspec (see exercises/ci/README.md).
#
# Gradescope runs this once, as root, while it builds the autograder image (an Ubuntu image with
# the autograder zip unpacked in /autograder/source). It installs attnspec into a virtual
# environment at /autograder/venv, which run_autograder puts first on PATH.
#
# Two ways to ship attnspec:
# - a bundle from `attnspec autograder gradescope` (source/attnspec.env exists): install the pinned
#   requirements.txt, the attnspec wheel in the bundle, and learner-requirements.txt if present;
# - otherwise, ATTNSPEC_SOURCE below: a folder, a URL or a pip requirement.
#
# Settings: edit the defaults below, or set the variables in the environment.
set -euo pipefail

# Root of the autograder tree.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE_DIR="$ROOT/source"
if [ -f "$SOURCE_DIR/attnspec.env" ]; then
    # shellcheck disable=SC1091  # written by `attnspec autograder gradescope`
    . "$SOURCE_DIR/attnspec.env"
fi
# Where attnspec comes from. A folder (default: the copy of the attnspec repository shipped in
# the autograder zip) is installed from that folder; anything with :// is a URL
# (e.g. git+https://github.com/<org>/attnspec@v0.1.0); anything else is a pip requirement
# (e.g. "attnspec==0.1.0").
ATTNSPEC_SOURCE="${ATTNSPEC_SOURCE:-$ROOT/source/attnspec}"
# Extras to install with it: "[torch]" for PyTorch submissions, "" for a NumPy-only course.
ATTNSPEC_EXTRAS="${ATTNSPEC_EXTRAS-[torch]}"
# The PyTorch version, pinned through a constraints file (keep it equal to the repository's
# constraints.txt), and the index of its CPU-only wheels: the default PyPI wheels for Linux pull
# in several GB of CUDA libraries that an autograder never uses.
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
# The Python that creates the virtual environment.
PYTHON="${PYTHON:-python3}"
# Set to 1 to skip apt-get (an image that already has python3 and its venv module).
SKIP_APT="${SKIP_APT:-0}"
# Set to 1 to print the commands instead of running them.
DRY_RUN="${DRY_RUN:-0}"

VENV="$ROOT/venv"
CONSTRAINTS="$ROOT/constraints.txt"

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

requirement() {
    if [ -d "$ATTNSPEC_SOURCE" ] || [[ $ATTNSPEC_SOURCE == /* || $ATTNSPEC_SOURCE == ./* ]]; then
        printf '%s%s' "$ATTNSPEC_SOURCE" "$ATTNSPEC_EXTRAS"
    elif [[ $ATTNSPEC_SOURCE == *://* ]]; then
        printf 'attnspec%s @ %s' "$ATTNSPEC_EXTRAS" "$ATTNSPEC_SOURCE"
    else
        printf '%s' "$ATTNSPEC_SOURCE"
    fi
}

if [ "$SKIP_APT" != 1 ] && command -v apt-get >/dev/null 2>&1; then
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi

if [ "$DRY_RUN" = 1 ]; then
    echo "+ write $CONSTRAINTS: torch==$TORCH_VERSION"
else
    mkdir -p "$ROOT"
    printf 'torch==%s\n' "$TORCH_VERSION" > "$CONSTRAINTS"
fi

run "$PYTHON" -m venv "$VENV"
run "$VENV/bin/python" -m pip install --upgrade pip
if [ -n "${ATTNSPEC_WHEEL:-}" ]; then
    # The bundle: pinned requirements (torch from the CPU wheel index when the course uses it),
    # then attnspec itself without dependencies, then the packages learners may import, held to
    # the same pins so they cannot move numpy or torch.
    index=()
    if [ "${ATTNSPEC_TORCH:-1}" = 1 ]; then
        index=(--extra-index-url "$TORCH_INDEX_URL")
    fi
    run "$VENV/bin/python" -m pip install "${index[@]}" --requirement "$SOURCE_DIR/requirements.txt"
    run "$VENV/bin/python" -m pip install --no-deps "$SOURCE_DIR/$ATTNSPEC_WHEEL"
    if [ -f "$SOURCE_DIR/learner-requirements.txt" ]; then
        run "$VENV/bin/python" -m pip install "${index[@]}" --constraint "$SOURCE_DIR/requirements.txt" --requirement "$SOURCE_DIR/learner-requirements.txt"
    fi
else
    run "$VENV/bin/python" -m pip install --constraint "$CONSTRAINTS" --extra-index-url "$TORCH_INDEX_URL" "$(requirement)"
fi
run "$VENV/bin/attnspec" --version
