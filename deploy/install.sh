#!/bin/sh
# Install one rawtap distribution (with extras) and exactly the dependency versions of
# uv.lock into a virtual environment, as built wheels (nothing points back at the source
# tree). The Dockerfiles run it; tests/integration/test_deploy_install.py runs it too, so
# the images' install step is tested on every CI run.
#   deploy/install.sh VENV PACKAGE [EXTRA ...]      (from the repository root)
set -eu
venv=$1
package=$2
shift 2
extras=""
for extra in "$@"; do
    extras="$extras --extra $extra"
done
# --locked: fail rather than resolve anything uv.lock does not say.
# --no-dev: none of the workspace's test, lint or bench tools.
# shellcheck disable=SC2086  # $extras is a list of words on purpose
UV_PROJECT_ENVIRONMENT="$venv" uv sync --locked --no-dev --no-editable --compile-bytecode \
    --package "$package" $extras
