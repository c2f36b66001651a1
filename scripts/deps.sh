#!/usr/bin/env bash
# Installs what crest needs to build and test, from Debian's archive, only when missing.
# Usage: scripts/deps.sh build|test
set -euo pipefail
build_pkgs="gcc make pkg-config protobuf-c-compiler libprotobuf-c-dev libzstd-dev"
test_pkgs="python3 python3-pytest procps"
want=$build_pkgs
[ "${1:-build}" = test ] && want="$build_pkgs $test_pkgs"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
