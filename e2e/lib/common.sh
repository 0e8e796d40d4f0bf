# Shared helpers for the e2e scripts (sourced, not run).
# shellcheck shell=bash

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$E2E_DIR/.." && pwd)
# shellcheck source=../versions.env
source "$E2E_DIR/versions.env"

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }
log() { echo "$(basename "$0"): $*" >&2; }

# Built binaries live outside the repo so every clone and CI run reuses them.
bin_cache_dir() { echo "${XDG_CACHE_HOME:-$HOME/.cache}/dbclaim/bin"; }
# bin_path COMPONENT VERSION -> path of the cached binary
bin_path() { echo "$(bin_cache_dir)/$1-$2/$1"; }

# parse_state_args DEFAULT_DIR "ACTION..." "$@": sets STATE (absolute) and ACTION.
# The state dir comes from --state DIR, else DEFAULT_DIR, so several processes
# can each run their own instance.
parse_state_args() {
  local default=$1 actions=" $2 "
  shift 2
  ACTION="" STATE=""
  while (($#)); do
    case $1 in
      --state) [[ $# -ge 2 ]] || die "--state needs a directory"; STATE=$2; shift 2 ;;
      --state=*) STATE=${1#--state=}; shift ;;
      -h | --help) usage; exit 0 ;;
      -*) usage >&2; die "unknown option: $1" ;;
      *)
        [[ $actions == *" $1 "* ]] || { usage >&2; die "unknown action: $1"; }
        [[ -z $ACTION ]] || die "only one action allowed"
        ACTION=$1
        shift
        ;;
    esac
  done
  [[ -n $ACTION ]] || { usage >&2; exit 2; }
  # Absolute (it is recorded in files and passed to daemons); created by `up` only.
  STATE=$(realpath -m "${STATE:-$default}")
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
# (The kernel picks it; there is a small race until our server binds it.)
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pid_alive PIDFILE: the recorded process still runs.
pid_alive() {
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pidfile PIDFILE [GRACE_SECONDS]: TERM the recorded process, KILL it after
# the grace period, and wait until it is gone. Only ever the recorded PID.
stop_pidfile() {
  local pidfile=$1 grace=${2:-10} pid i
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ($(basename "$pidfile" .pid)) ignored TERM for ${grace}s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

# start_daemon NAME LOGFILE CMD...: start CMD detached in its own session (so a
# Ctrl-C in the caller's terminal does not reach it and down stays in charge),
# record its PID in $STATE/NAME.pid.
start_daemon() {
  local name=$1 logfile=$2
  shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

# wait_until TIMEOUT_SECONDS DESCRIPTION LOGFILE PIDFILE CMD...: poll CMD until it
# succeeds; fail with the log tail if it times out or the process dies.
wait_until() {
  local timeout=$1 what=$2 logfile=$3 pidfile=$4 deadline
  shift 4
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      echo "---- last lines of $logfile ----" >&2
      tail -n 30 "$logfile" >&2 || true
      die "$what: the process exited before it became ready (log: $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      echo "---- last lines of $logfile ----" >&2
      tail -n 30 "$logfile" >&2 || true
      die "$what: not ready after ${timeout}s (log: $logfile)"
    fi
    sleep 0.2
  done
}
