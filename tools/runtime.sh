#!/usr/bin/env bash
# msmt-rank runtime: gives every command a working TFX 1.21 runtime on this host.
#
#   tools/runtime.sh ensure          build the runtime if it is missing (idempotent, seconds when cached)
#   tools/runtime.sh exec CMD ARGS   run CMD inside the runtime (builds it first when missing)
#   tools/runtime.sh shell           interactive shell inside the runtime
#   tools/runtime.sh info            print the mode, cache paths and lock hash
#   tools/runtime.sh binds ARGS      print the host directories the path arguments ARGS need bound (bin/msmt)
#   tools/runtime.sh clean           delete this lock file's cached runtime
#
# Modes (docs/runtime.md):
#   venv    host glibc >= 2.39 and python3 3.10-3.13: a plain virtualenv in .venv (keyed by the lock hash).
#   rootfs  otherwise: a Debian 13 (trixie) root filesystem made with debootstrap, cached outside the repo,
#           entered with `unshare -m` + `chroot`, with the repo and ../shared bind-mounted at their own paths.
#
# Environment overrides:
#   MSMT_RUNTIME_MODE      venv | rootfs (default: detected)
#   MSMT_RUNTIME_CACHE     cache directory for root filesystems (default: ${XDG_CACHE_HOME:-$HOME/.cache}/msmt-rank)
#   MSMT_DEBIAN_MIRROR     Debian mirror URL for debootstrap (default: first mirror in the host's apt sources)
#   MSMT_EXTRA_BINDS       colon-separated extra host directories to bind into the rootfs at the same path
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$REPO/requirements.lock"
SHARED="$(cd "$REPO/.." && pwd)/shared"
SUITE=trixie
BASE_PACKAGES="python3,python3-venv,python3-pip,python3-dev,g++,ca-certificates"
BASE_RECIPE_VERSION=1
CACHE="${MSMT_RUNTIME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msmt-rank}"

die() { echo "msmt-runtime: error: $*" >&2; exit 2; }
say() { echo "msmt-runtime: $*" >&2; }

[ -f "$LOCK" ] || die "lock file $LOCK is missing; restore it from git (git checkout -- requirements.lock)"
LOCK_HASH="$(sha256sum "$LOCK" | cut -c1-16)"
BASE_KEY="$(printf '%s|%s|%s' "$SUITE" "$BASE_PACKAGES" "$BASE_RECIPE_VERSION" | sha256sum | cut -c1-12)"
ROOT="$CACHE/rootfs-$SUITE-$BASE_KEY"
VENV_IN_ROOT="/opt/msmt-venv-$LOCK_HASH"
HOST_VENV="$REPO/.venv"

glibc_ok() {
  local v
  v="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$v" ] || return 1
  python3 - "$v" <<'EOF' 2>/dev/null
import sys
major, minor = (int(x) for x in sys.argv[1].split(".")[:2])
sys.exit(0 if (major, minor) >= (2, 39) else 1)
EOF
}

python_ok() {
  command -v python3 >/dev/null 2>&1 || return 1
  python3 -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null
}

detect_mode() {
  if [ -n "${MSMT_RUNTIME_MODE:-}" ]; then
    case "$MSMT_RUNTIME_MODE" in venv|rootfs) echo "$MSMT_RUNTIME_MODE"; return;; esac
    die "MSMT_RUNTIME_MODE must be 'venv' or 'rootfs', got '$MSMT_RUNTIME_MODE'"
  fi
  if glibc_ok && python_ok; then echo venv; else echo rootfs; fi
}

# First Debian mirror named in the host's apt sources (deb822 .sources or one-line sources.list).
host_mirror() {
  if [ -n "${MSMT_DEBIAN_MIRROR:-}" ]; then echo "$MSMT_DEBIAN_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) if ($i !~ /security/) {print $i; exit}}' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri="$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^(https?|ftp|file):/ && $i !~ /security/) {print $i; exit}}' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  return 1
}

with_lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  if ! flock -n 9; then
    say "another build of the runtime is running; waiting for it ..."
    flock 9
  fi
}

# ---------------------------------------------------------------- rootfs mode
need_rootfs_tools() {
  [ "$(id -u)" = 0 ] || die "building or entering the Debian 13 runtime needs root (unshare -m, chroot); rerun as root, or use a host with glibc >= 2.39 and python3 3.10-3.13 (venv mode)"
  command -v unshare >/dev/null 2>&1 || die "'unshare' not found; install util-linux (apt-get install util-linux)"
  command -v chroot >/dev/null 2>&1 || die "'chroot' not found; install coreutils"
}

build_base_rootfs() {
  [ -f "$ROOT/.msmt-base-ready" ] && return 0
  if ! command -v debootstrap >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      say "installing debootstrap with apt-get ..."
      { apt-get update -qq && apt-get install -y -qq debootstrap; } >&2 \
        || die "could not install debootstrap (no network?); run 'apt-get update && apt-get install debootstrap' and retry"
    else
      die "'debootstrap' not found and no apt-get here; install debootstrap and retry"
    fi
  fi
  local mirror
  mirror="$(host_mirror)" || die "no Debian mirror found in /etc/apt/sources*; set MSMT_DEBIAN_MIRROR to a Debian mirror URL"
  say "building Debian 13 ($SUITE) root filesystem in $ROOT (once per machine, ~1 min) ..."
  local tmp="$ROOT.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local t0=$SECONDS
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    die "debootstrap $SUITE from the host's mirror failed (no network? see $CACHE/debootstrap.log); set MSMT_DEBIAN_MIRROR to a reachable Debian mirror and retry"
  fi
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
  touch "$ROOT/.msmt-base-ready"
  say "root filesystem ready in $((SECONDS - t0)) s"
}

# Host files carried into the rootfs: CA bundle (TLS through the host's trust store), resolver, pip settings.
sync_host_files() {
  local f
  for f in /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
    if [ -f "$f" ]; then
      mkdir -p "$ROOT$(dirname "$f")"
      cp -fL "$f" "$ROOT$f" 2>/dev/null || true
    fi
  done
  local var path
  for var in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE; do
    path="${!var:-}"
    if [ -n "$path" ] && [ -f "$path" ] && [ ! -e "$ROOT$path" ]; then
      mkdir -p "$ROOT$(dirname "$path")"
      cp -fL "$path" "$ROOT$path"
    fi
  done
}

# Directories bound into the rootfs at their own absolute paths.
bind_list() {
  local d
  # /tmp first: later, more specific binds (a repo or ../shared under /tmp) must stay on top of it.
  [ -d /tmp ] && printf '%s\n' /tmp
  printf '%s\n' "$REPO"
  [ -d "$SHARED" ] && printf '%s\n' "$(cd "$SHARED" && pwd -P)"
  printf '%s\n' "$(pwd -P)"
  if [ -n "${MSMT_EXTRA_BINDS:-}" ]; then
    local IFS=:
    for d in $MSMT_EXTRA_BINDS; do [ -d "$d" ] && printf '%s\n' "$(cd "$d" && pwd -P)"; done
  fi
}

# The host directories that path-like arguments need inside the rootfs: for every argument (or the value of a
# --opt=value argument) that looks like a local path, the part before any glob character or {SPAN}, made
# absolute, then its nearest existing directory (an output directory that does not exist yet binds its parent).
# "/" is never bound; URIs (gs://...) are not paths.
path_binds() {
  local a v p
  for a in "$@"; do
    v="$a"
    case "$a" in --*=*) v="${a#*=}" ;; esac
    case "$v" in *://*) continue ;; /*|./*|../*|*/*) ;; *) [ -e "$v" ] || continue ;; esac
    p="${v%%[*?[{]*}"
    [ -n "$p" ] || continue
    p="$(realpath -m -- "$p" 2>/dev/null)" || continue
    while [ ! -d "$p" ] && [ "$p" != "/" ]; do p="$(dirname -- "$p")"; done
    [ "$p" = "/" ] || printf '%s\n' "$p"
  done
}

# Run "$@" inside the rootfs, in a private mount namespace (mounts vanish with the process).
rootfs_run() {
  sync_host_files
  local binds
  binds="$(bind_list | awk '!seen[$0]++' | tr '\n' ':')"
  MSMT_ROOT="$ROOT" MSMT_BINDS="$binds" MSMT_CWD="$(pwd -P)" MSMT_VENV="$VENV_IN_ROOT" MSMT_REPO="$REPO" \
    exec unshare -m --propagation private -- /bin/bash -c '
      set -e
      for d in proc sys dev; do mount --rbind "/$d" "$MSMT_ROOT/$d"; done
      IFS=:
      for b in $MSMT_BINDS; do
        [ -n "$b" ] || continue
        mkdir -p "$MSMT_ROOT$b"
        mount --rbind "$b" "$MSMT_ROOT$b"
      done
      unset IFS
      exec chroot "$MSMT_ROOT" /usr/bin/env \
        HOME=/root \
        PATH="$MSMT_VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        VIRTUAL_ENV="$MSMT_VENV" \
        PYTHONPATH="$MSMT_REPO${PYTHONPATH:+:$PYTHONPATH}" \
        TF_USE_LEGACY_KERAS=1 \
        MSMT_IN_RUNTIME=1 \
        /bin/bash -c "cd \"\$0\" && exec \"\$@\"" "$MSMT_CWD" "$@"
    ' msmt-runtime "$@"
}

build_rootfs_venv() {
  [ -f "$ROOT$VENV_IN_ROOT/.msmt-ready" ] && return 0
  say "installing the locked Python packages into $VENV_IN_ROOT inside the root filesystem (~2 min) ..."
  local t0=$SECONDS
  # A subshell so that rootfs_run's exec replaces only it.
  ( rootfs_run /bin/bash -c '
      set -e
      rm -rf "$VIRTUAL_ENV"
      python3 -m venv "$VIRTUAL_ENV"
      "$VIRTUAL_ENV/bin/pip" install --no-input -q --upgrade pip
      "$VIRTUAL_ENV/bin/pip" install --no-input -r "$0"
      touch "$VIRTUAL_ENV/.msmt-ready"
    ' "$LOCK" ) || die "pip install of $LOCK inside the root filesystem failed (no network? see the pip output above)"
  say "packages installed in $((SECONDS - t0)) s"
}

ensure_rootfs() {
  need_rootfs_tools
  if [ -f "$ROOT/.msmt-base-ready" ] && [ -f "$ROOT$VENV_IN_ROOT/.msmt-ready" ]; then return 0; fi
  with_lock
  build_base_rootfs
  build_rootfs_venv
}

# ---------------------------------------------------------------- venv mode
ensure_venv() {
  [ -f "$HOST_VENV/.msmt-ready-$LOCK_HASH" ] && return 0
  with_lock
  [ -f "$HOST_VENV/.msmt-ready-$LOCK_HASH" ] && return 0
  python_ok || die "venv mode needs python3 3.10-3.13 on PATH"
  say "creating $HOST_VENV from $LOCK (~2 min) ..."
  rm -rf "$HOST_VENV"
  python3 -m venv "$HOST_VENV" || die "python3 -m venv failed; install the venv module (e.g. apt-get install python3-venv)"
  "$HOST_VENV/bin/pip" install --no-input -q --upgrade pip
  "$HOST_VENV/bin/pip" install --no-input -r "$LOCK" || die "pip install -r $LOCK failed (no network? see above)"
  touch "$HOST_VENV/.msmt-ready-$LOCK_HASH"
}

venv_run() {
  export PATH="$HOST_VENV/bin:$PATH" VIRTUAL_ENV="$HOST_VENV" TF_USE_LEGACY_KERAS=1 MSMT_IN_RUNTIME=1
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  exec "$@"
}

# ---------------------------------------------------------------- main
MODE="$(detect_mode)"
cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  ensure)
    if [ "$MODE" = venv ]; then ensure_venv; else ensure_rootfs; fi
    say "runtime ready ($MODE mode, lock $LOCK_HASH)"
    ;;
  exec)
    [ $# -gt 0 ] || die "usage: tools/runtime.sh exec CMD [ARGS...]"
    if [ "${MSMT_IN_RUNTIME:-}" = 1 ]; then exec "$@"; fi
    if [ "$MODE" = venv ]; then ensure_venv; venv_run "$@"; else ensure_rootfs; rootfs_run "$@"; fi
    ;;
  shell)
    if [ "$MODE" = venv ]; then ensure_venv; venv_run /bin/bash; else ensure_rootfs; rootfs_run /bin/bash; fi
    ;;
  binds)
    path_binds "$@" | awk '!seen[$0]++'
    ;;
  info)
    echo "mode=$MODE"
    echo "lock_hash=$LOCK_HASH"
    if [ "$MODE" = venv ]; then echo "venv=$HOST_VENV"; else echo "rootfs=$ROOT"; echo "venv=$VENV_IN_ROOT"; fi
    ;;
  clean)
    if [ "$MODE" = venv ]; then rm -rf "$HOST_VENV"; else rm -rf "$ROOT$VENV_IN_ROOT"; fi
    say "removed the cached runtime for lock $LOCK_HASH"
    ;;
  ""|-h|--help|help)
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    ;;
  *) die "unknown command '$cmd'; see tools/runtime.sh --help" ;;
esac
