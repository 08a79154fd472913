#!/usr/bin/env bash
# The system programs the tests start themselves, from Debian's packages (the Python
# ones, Temporal included, come from PyPI through `make venv`):
#   chromium    the browser tests (tests/e2e), always at /usr/bin/chromium
#   redis       redis-server: the Redis fault and rate-limit tests, production mode
#   postgresql  initdb and pg_ctl under /usr/lib/postgresql/*/bin: production mode
# Usage: scripts/check_test_dependencies.sh [chromium] [redis] [postgresql] (none: all).
# As root, installs what is missing; otherwise names the command and fails, so a
# missing program never turns into skipped tests.
set -euo pipefail

(( $# )) || set -- chromium redis postgresql

present() {
    case "$1" in
        chromium) [[ -x /usr/bin/chromium ]] ;;
        redis) command -v redis-server >/dev/null 2>&1 ;;
        postgresql) compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null ;;
        *) echo "unknown dependency: $1 (chromium, redis, postgresql)" >&2; exit 2 ;;
    esac
}

package() {
    case "$1" in
        redis) echo redis-server ;;
        *) echo "$1" ;;
    esac
}

missing=()
for dependency in "$@"; do
    present "$dependency" || missing+=("$(package "$dependency")")
done
(( ${#missing[@]} )) || exit 0

install=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "The tests need ${missing[*]}, which is not installed. Install it with:" >&2
    echo "    sudo apt-get update && sudo ${install[*]}" >&2
    exit 1
fi

echo "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
"${install[@]}"

for dependency in "$@"; do
    if ! present "$dependency"; then
        echo "$(package "$dependency") was installed but is still not where the tests look" >&2
        exit 1
    fi
done
