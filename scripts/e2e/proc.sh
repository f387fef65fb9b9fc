# Sourced by the e2e scripts: starting, stopping and finding this run's daemons, and undoing the
# mounts and loop devices under the run directory. Every daemon's pid is kept in RUN/pids/NAME and
# it is stopped by that pid; the only search is for processes naming RUN on their command line
# (containerd shims, and anything a crash orphaned), never by a program's name alone.

# free_ports N: N distinct free TCP ports on 127.0.0.1, space separated.
free_ports() {
  node -e '
    const net = require("net"); const n = +process.argv[1]; const ss = [];
    (async () => { for (let i = 0; i < n; i++) { const s = net.createServer(); ss.push(s);
      await new Promise((r) => s.listen(0, "127.0.0.1", r)) }
      console.log(ss.map((s) => s.address().port).join(" ")); ss.forEach((s) => s.close()) })()' "$1"
}

# start NAME RUN CMD...: runs CMD in its own session, output to RUN/logs/NAME.log.
start() {
  local name="$1" run="$2"; shift 2
  mkdir -p "$run/logs" "$run/pids"
  setsid "$@" </dev/null >>"$run/logs/$name.log" 2>&1 &
  echo $! >"$run/pids/$name"
}

# wait_until SECONDS WHAT CMD...: polls CMD until it succeeds.
wait_until() {
  local secs="$1" what="$2" i; shift 2
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "timed out after ${secs}s waiting for $what" >&2
  return 1
}

alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop NAME RUN [SIGNAL]: SIGNAL (default TERM), up to 15 s for it to exit, then KILL.
stop() {
  local name="$1" run="$2" sig="${3:-TERM}" pid i
  [ -f "$run/pids/$name" ] || return 0
  pid="$(cat "$run/pids/$name")"
  if alive "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do alive "$pid" || break; sleep 0.25; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 20; i++)); do alive "$pid" || break; sleep 0.25; done
  fi
  rm -f "$run/pids/$name"
}

stop_all() {
  local run="$1" name; shift
  for name in "$@"; do stop "$name" "$run"; done
}

# pids_matching RUN [WORD]: processes outside this shell's session whose command line names RUN
# (and WORD). The scripts and kubectl of this run share its session; the daemons do not.
pids_matching() {
  local run="$1" word="${2:-}" me p cmd
  me="$(awk '{print $6}' /proc/$$/stat)"
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" || continue
    case "$cmd" in *"$run"*) ;; *) continue ;; esac
    [ -n "$word" ] && case "$cmd" in *"$word"*) ;; *) continue ;; esac
    [ "$(awk '{print $6}' "/proc/$p/stat" 2>/dev/null)" = "$me" ] && continue
    echo "$p"
  done
}

kill_matching() {
  local p
  for p in $(pids_matching "$@"); do kill -KILL "$p" 2>/dev/null || true; done
}

# unmount_under RUN: every mount at or below RUN, deepest first, a few passes for stacked mounts.
unmount_under() {
  local run="$1" pass m
  for pass in 1 2 3 4 5; do
    mapfile -t mounts < <(awk -v r="$run" '$5 == r || index($5, r "/") == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)
    [ "${#mounts[@]}" = 0 ] && return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

# detach_loops_under RUN: loop devices whose backing file lies under RUN.
detach_loops_under() {
  local run="$1" f dev
  # First those on the data root: once its own loop device is gone, its number may be another's.
  for dev in $(loops_on_data_root "$run"); do losetup -d "$dev" 2>/dev/null || true; done
  for f in /sys/block/loop*/loop/backing_file; do
    [ -f "$f" ] || continue
    if grep -q "^$run/" "$f"; then
      dev="/dev/$(basename "$(dirname "$(dirname "$f")")")"
      losetup -d "$dev" 2>/dev/null || true
    fi
  done
}

# loops_on_data_root RUN: loop devices backed by a file on the run's data root filesystem, found
# by the backing file's device number (LOOP_GET_STATUS64, through losetup). sysfs's backing_file
# cannot tell: it is the path as the attaching mount namespace saw it, and once the node plugin's
# container is gone it reads "/images/v-....img", relative to a detached mount.
loops_on_data_root() {
  local run="$1"
  [ -s "$run/data-dev" ] || return 0
  # Only while that device number is still the run's data.img (it may be reused after the run).
  [ "$(cat "/sys/dev/block/$(cat "$run/data-dev")/loop/backing_file" 2>/dev/null)" = "$run/data.img" ] || return 0
  losetup -l -n -O NAME,BACK-MAJ:MIN 2>/dev/null | awk -v d="$(cat "$run/data-dev")" '$2 == d { print $1 }'
}
