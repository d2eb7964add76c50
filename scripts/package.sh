#!/usr/bin/env bash
# Builds the Debian packages and checks them with lintian:
#
#   scripts/package.sh
#
# produces, in ${PKG_BUILD_DIR:-build-pkg}/deb/:
#   agentlock_<version>_amd64.deb         agentlockd, its unit, config, sysusers entry, man page
#   libagentlock-dev_<version>_amd64.deb  the static library, headers, CMake package
# Release build with Debian's hardening flags (dpkg-buildflags), prefix /usr, no tests.
# Depends: comes from dpkg-shlibdeps. Fails when lintian reports an error; prints its warnings.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${PKG_BUILD_DIR:-$here/build-pkg}
jobs=${AGENTLOCK_JOBS:-$(nproc)}

AGENTLOCK_EXTRA_PACKAGES="${AGENTLOCK_EXTRA_PACKAGES:-} dpkg-dev file lintian" \
  "$here/scripts/install-deps.sh"

cd "$here" # dpkg-buildflags maps the current directory in -ffile-prefix-map
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS)
# Without -g: the package ships stripped objects, and a 26 MB static library is mostly DWARF.
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS | sed 's/\(^\| \)-g\( \|$\)/ /') $CPPFLAGS"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DAGENTLOCK_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS="$CXXFLAGS" -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS" \
  >/dev/null
cmake --build "$build" -j "$jobs"

rm -rf "$build/deb"
(cd "$build" && cpack -G DEB -B "$build/deb" >"$build/cpack.log" 2>&1) || {
  cat "$build/cpack.log" >&2
  echo "package: cpack failed" >&2
  exit 1
}
rm -rf "$build/deb/_CPack_Packages"
mapfile -t debs < <(find "$build/deb" -maxdepth 1 -name '*.deb' | sort)
if ((${#debs[@]} == 0)); then
  echo "package: cpack made no .deb" >&2
  exit 1
fi

status=0
for deb in "${debs[@]}"; do
  echo "== $deb"
  dpkg-deb --field "$deb" Package Version Architecture Depends Recommends
  echo "-- lintian $(basename "$deb")"
  # Exit status: non-zero when lintian finds an error (its default --fail-on=error).
  if ! lintian --display-info "$deb"; then
    echo "package: lintian reports errors in $(basename "$deb")" >&2
    status=1
  fi
done
((status == 0)) && echo "package: ok: ${debs[*]}"
exit $status
