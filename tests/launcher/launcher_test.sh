#!/usr/bin/env bash
# Tests of ftccl_run, the launcher; one CTest test per case. The ranks are /bin/sh scripts
# (no libftccl). They write the pids worth checking into the case's temp dir, and every
# case ends by checking that no process of the job outlived the launcher.
# usage: launcher_test.sh FTCCL_RUN CASE
set -u
run=$1
case_name=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ftccl_run_test.XXXXXX")
# Tags every process of the job: the launcher passes its environment on to the ranks and
# they to theirs. Leftover checks and the cleanup below touch only tagged processes, so a
# reused pid can never make us check or kill a stranger.
export FTCCL_RUN_TEST_TAG=$tmp
launcher_pid=

# Tagged processes still alive (a zombie's environ reads empty: it is gone, only not yet
# reaped). The commands of this script are tagged too, so the glob is expanded before
# grep and sed start, and callers must not run it in a pipeline with another command.
tagged_pids() {
  local files=(/proc/[0-9]*/environ)
  grep -lzx "FTCCL_RUN_TEST_TAG=$tmp" "${files[@]}" 2>/dev/null |
    sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}

is_alive() {  # pid: a live, tagged process
  kill -0 "$1" 2>/dev/null && grep -qzx "FTCCL_RUN_TEST_TAG=$tmp" "/proc/$1/environ" 2>/dev/null
}

cleanup() {
  # Only when a check failed can anything be left; kill it by pid, tagged ones only.
  local pid
  for pid in $(tagged_pids); do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL [$case_name]: $*"
  echo "--- launcher stdout:"; cat "$tmp/out" 2>/dev/null
  echo "--- launcher stderr:"; cat "$tmp/err" 2>/dev/null
  exit 1
}

# Runs the launcher in the foreground; sets status and elapsed_ms. (EPOCHREALTIME: bash 5's
# clock in microseconds; the decimal point may be a comma in some locales.)
launch() {
  local t0=${EPOCHREALTIME/[.,]/}
  "$run" "$@" > "$tmp/out" 2> "$tmp/err"
  status=$?
  local t1=${EPOCHREALTIME/[.,]/}
  elapsed_ms=$(( (10#$t1 - 10#$t0) / 1000 ))
}

expect_status() {
  [ "$status" -eq "$1" ] || fail "exit status $status, expected $1 (ftccl_run $2)"
}

expect_in() {  # file (out or err), extended regex
  grep -Eq -- "$2" "$tmp/$1" || fail "no line matching '$2' in the launcher's std$1"
}

expect_not_in() {
  ! grep -Eq -- "$2" "$tmp/$1" || fail "unexpected line matching '$2' in the launcher's std$1"
}

expect_faster_than() {  # ms, what
  [ "$elapsed_ms" -lt "$1" ] || fail "$2 took ${elapsed_ms} ms (limit $1 ms)"
}

read_pid() {  # name of a .pid file the ranks wrote; sets pid (not in a subshell: fail exits)
  [ -s "$tmp/$1.pid" ] || fail "the ranks did not write $1.pid"
  pid=$(cat "$tmp/$1.pid")
}

# Every pid file the ranks wrote names a process that is gone, and no tagged process is left.
expect_all_gone() {
  local f pid
  for f in "$tmp"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    ! is_alive "$pid" || fail "$(basename "$f" .pid) (pid $pid) outlived the launcher"
  done
  pid=$(tagged_pids)
  pid=${pid%%$'\n'*}
  [ -z "$pid" ] || fail "process $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)) outlived the launcher"
}

wait_for_files() {  # names in $tmp; up to 5 s
  local i f missing
  for ((i = 0; i < 100; i++)); do
    missing=no
    for f in "$@"; do [ -s "$tmp/$f" ] || missing=yes; done
    [ "$missing" = no ] && return 0
    sleep 0.05
  done
  fail "the ranks did not write $*"
}

# A rank that records its pid, leaves a background grandchild (same process group), and
# hangs until killed.
write_hang_script() {
  cat > "$tmp/hang.sh" <<'SCRIPT'
sleep 1000 &
echo $! > "$FTCCL_RUN_TEST_TAG/grandchild$FTCCL_RANK.pid"
echo $$ > "$FTCCL_RUN_TEST_TAG/rank$FTCCL_RANK.pid"
wait
SCRIPT
}

# ---- cases ----------------------------------------------------------------------------

case_env() {
  launch -n 3 -- /bin/sh -c 'echo "env $FTCCL_RANK $FTCCL_NRANKS $FTCCL_LOCAL_RANK $FTCCL_LOCAL_SIZE $FTCCL_LAUNCHER ${FTCCL_FAULT_INJECTION:-unset} $FTCCL_COMM_ID $FTCCL_COMM_SECRET"; echo "to stderr $FTCCL_RANK" >&2; printf "partial $FTCCL_RANK"'
  expect_status 0 "with three ranks that exit 0"
  local r
  for r in 0 1 2; do
    expect_in out "^\[$r\] env $r 3 $r 3 1 unset 127\.0\.0\.1:[0-9]{1,5} [0-9a-f]{32}\$"
    expect_in err "^\[$r\] to stderr $r\$"
    expect_in out "^\[$r\] partial $r\$"  # the last line had no newline
    expect_in err "^ftccl_run: rank $r \(pid [0-9]+\) exited 0\$"
  done
  expect_not_in out '^[^[]|^\[[0-9]+\] .*\[[0-9]+\] '  # every line prefixed, none merged
  local shared
  shared=$(sed -n 's/^\[[0-9]\] env .* \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$tmp/out" | sort -u | wc -l)
  [ "$shared" -eq 1 ] || fail "the ranks got different FTCCL_COMM_ID or FTCCL_COMM_SECRET"
  local port
  port=$(sed -n 's/^\[0\] env .* 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/out")
  [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || fail "bad port $port"

  # Arguments pass through untouched; PROGRAM is searched in PATH; --quiet is quiet.
  launch -n 2 --quiet -- sh -c 'echo "args: $1|$2|$#"' zero 'a b' '*'
  expect_status 0 "with --quiet"
  expect_in out '^\[1\] args: a b\|\*\|2$'
  expect_not_in err 'ftccl_run'
  expect_all_gone
}

case_exit_status() {
  launch -n 3 -- /bin/sh -c '[ "$FTCCL_RANK" = 1 ] && exit 3; exit 0'
  expect_status 3 "when rank 1 exits 3"
  expect_in err '^ftccl_run: rank 1 \(pid [0-9]+\) exited 3$'

  launch -n 4 -- /bin/sh -c 'case $FTCCL_RANK in 1) exit 3;; 2) exit 5;; esac; exit 0'
  expect_status 5 "when ranks exit 3 and 5"

  launch -n 2 -- /bin/sh -c '[ "$FTCCL_RANK" = 1 ] && kill -TERM $$; exit 0'
  expect_status 143 "when rank 1 dies of SIGTERM"
  expect_in err '^ftccl_run: rank 1 \(pid [0-9]+\) died of signal 15 \(SIGTERM\)$'

  launch -n 2 -- "$tmp/no such program"
  expect_status 127 "when PROGRAM does not exist"
  expect_in err "^\[0\] ftccl_run: cannot execute '.*no such program': No such file or directory\$"
  expect_in err '^ftccl_run: rank 1 \(pid [0-9]+\) exited 127$'
  expect_all_gone
}

case_usage() {
  local args
  for args in "" "-- true" "-n 0 -- true" "-n x -- true" "-n 2" "-n 2 --" \
              "-n 2 --kill 2@1 -- true" "-n 2 --kill 1@abc -- true" "-n 2 --stop 1@-1 -- true" \
              "-n 2 --drop 1 -- true" "-n 2 --kill @1 -- true" "-n 2 --timeout 0 -- true" \
              "-n 2 --timeout -- true" "-n 2 --bogus -- true" "-n 2 --addr localhost -- true" \
              "-n 2000 -- true"; do
    # shellcheck disable=SC2086  # word splitting of the arguments is the point
    launch $args
    expect_status 2 "$args"
    expect_in err '^usage: ftccl_run -n N'
    expect_not_in out .
  done
  launch --help
  expect_status 0 "--help"
  expect_in out '^usage: ftccl_run -n N'

  # Valid corner cases: -nN, --opt=value, fractional times, a fault too late to hit.
  launch -n1 --timeout=5 --kill=0@2.5 --addr=127.0.0.1 -- /bin/sh -c 'echo "$FTCCL_COMM_ID"'
  expect_status 0 "with valid options"
  expect_in out '^\[0\] 127\.0\.0\.1:[0-9]+$'
  expect_in err '^ftccl_run: kill on rank 0 at 2\.500 s not injected: the job had ended$'
  # An IPv6 address is bracketed in FTCCL_COMM_ID (where the host has ::1 at all).
  if grep -qs '^0\{31\}1 ' /proc/net/if_inet6; then
    launch -n 1 --addr ::1 -- /bin/sh -c 'echo "$FTCCL_COMM_ID"'
    expect_status 0 "with --addr ::1"
    expect_in out '^\[0\] \[::1\]:[0-9]+$'
  fi
  expect_all_gone
}

case_kill() {
  cat > "$tmp/kill.sh" <<'SCRIPT'
echo $$ > "$FTCCL_RUN_TEST_TAG/rank$FTCCL_RANK.pid"
if [ "$FTCCL_RANK" = 1 ]; then
  sleep 1000 &   # same process group: the kill must take it too
  echo $! > "$FTCCL_RUN_TEST_TAG/grandchild1.pid"
  wait
fi
sleep 1
SCRIPT
  launch -n 3 --kill 1@0.5 -- /bin/sh "$tmp/kill.sh"
  expect_status 0 "when the killed rank's peers exit 0"
  expect_faster_than 10000 "a job with a killed rank"
  local pid
  read_pid rank1
  expect_in err "^ftccl_run: injected kill on rank 1 \(pid $pid\) at 0\.[5-9][0-9]* s\$"
  expect_in err "^ftccl_run: rank 1 \(pid $pid\) killed on purpose \(SIGKILL at 0\.[5-9][0-9] s\)\$"
  expect_in err '^ftccl_run: rank 0 \(pid [0-9]+\) exited 0$'
  read_pid grandchild1
  expect_all_gone

  # Two kills at once; the peers' status still counts.
  cat > "$tmp/kill2.sh" <<'SCRIPT'
case $FTCCL_RANK in 1|2) exec sleep 1000;; 3) sleep 0.8; exit 4;; esac
sleep 0.8
SCRIPT
  launch -n 4 --kill 1@0.3 --kill 2@0.3 -- /bin/sh "$tmp/kill2.sh"
  expect_status 4 "when rank 3 exits 4 and ranks 1 and 2 are killed"
  expect_in err '^ftccl_run: injected kill on rank 1 '
  expect_in err '^ftccl_run: injected kill on rank 2 '
  expect_all_gone
}

case_stop() {
  cat > "$tmp/stop.sh" <<'SCRIPT'
echo $$ > "$FTCCL_RUN_TEST_TAG/rank$FTCCL_RANK.pid"
[ "$FTCCL_RANK" = 1 ] && exec sleep 1000
sleep 1.5
SCRIPT
  "$run" -n 2 --stop 1@0.3 -- /bin/sh "$tmp/stop.sh" > "$tmp/out" 2> "$tmp/err" &
  launcher_pid=$!
  wait_for_files rank1.pid
  local pid state seen_stopped=no
  read_pid rank1
  # Rank 1 must be seen stopped ("T") while the launcher still waits for rank 0.
  while kill -0 "$launcher_pid" 2>/dev/null; do
    state=$(sed -n 's/^.*) \(.\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null)
    [ "$state" = T ] && seen_stopped=yes
    sleep 0.05
  done
  wait "$launcher_pid"
  status=$?
  launcher_pid=
  expect_status 0 "when the stopped rank's peer exits 0"
  [ "$seen_stopped" = yes ] || fail "rank 1 (pid $pid) was never seen stopped"
  expect_in err "^ftccl_run: injected stop on rank 1 \(pid $pid\) at 0\.[3-9][0-9]* s\$"
  expect_in err "^ftccl_run: rank 1 \(pid $pid\) stopped on purpose \(SIGSTOP at 0\.[3-9][0-9] s\); killed at the end"
  expect_all_gone
}

case_drop() {
  # Rank 1 exits 9 on SIGUSR2 (ignored: it is the victim); rank 2 survives it and is
  # killed once rank 0 is done.
  cat > "$tmp/drop.sh" <<'SCRIPT'
echo "${FTCCL_FAULT_INJECTION:-unset}" > "$FTCCL_RUN_TEST_TAG/injection$FTCCL_RANK"
echo $$ > "$FTCCL_RUN_TEST_TAG/rank$FTCCL_RANK.pid"
case $FTCCL_RANK in
  1) trap 'echo got > "$FTCCL_RUN_TEST_TAG/usr2.1"; exit 9' USR2;;
  2) trap 'echo got > "$FTCCL_RUN_TEST_TAG/usr2.2"' USR2;;
  *) sleep 1.5; exit 0;;
esac
i=0
while [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
SCRIPT
  launch -n 3 --drop 1@0.5 --drop 2@0.5 -- /bin/sh "$tmp/drop.sh"
  expect_status 0 "when the dropped ranks' peer exits 0"
  expect_faster_than 8000 "a job with dropped ranks"
  local r pid
  for r in 1 2; do
    [ -f "$tmp/usr2.$r" ] || fail "rank $r never got SIGUSR2"
    read_pid "rank$r"
    expect_in err "^ftccl_run: injected drop on rank $r \(pid $pid\) at 0\.[5-9][0-9]* s\$"
  done
  for r in 0 1 2; do
    [ "$(cat "$tmp/injection$r")" = 1 ] || fail "rank $r: FTCCL_FAULT_INJECTION is not 1"
  done
  expect_in err '^ftccl_run: rank 1 \(pid [0-9]+\) dropped on purpose \(SIGUSR2 at 0\.[5-9][0-9] s\); exited 9, ignored'
  expect_in err '^ftccl_run: rank 2 \(pid [0-9]+\) dropped on purpose \(SIGUSR2 at 0\.[5-9][0-9] s\); killed at the end'
  expect_all_gone
}

case_timeout() {
  write_hang_script
  launch -n 2 --timeout 1 -- /bin/sh "$tmp/hang.sh"
  expect_status 124 "--timeout 1 with hanging ranks"
  expect_faster_than 6000 "--timeout 1"
  expect_in err '^ftccl_run: timeout after 1\.000 s; ranks still running: 0 1; killing them$'
  expect_in err '^ftccl_run: rank 1 \(pid [0-9]+\) killed at the timeout$'
  local pid
  read_pid grandchild0
  read_pid grandchild1
  expect_all_gone
}

case_grandchildren() {
  # Ranks that exit 0 but leave background children behind, one in the rank's group and,
  # where setsid exists, one that escaped into its own session.
  cat > "$tmp/leave.sh" <<'SCRIPT'
sleep 1000 &
echo $! > "$FTCCL_RUN_TEST_TAG/background$FTCCL_RANK.pid"
if command -v setsid > /dev/null; then
  setsid sleep 1000 &
  echo $! > "$FTCCL_RUN_TEST_TAG/escaped$FTCCL_RANK.pid"
  sleep 0.3  # let it leave the group before the rank ends
fi
echo "done $FTCCL_RANK"
SCRIPT
  launch -n 2 -- /bin/sh "$tmp/leave.sh"
  expect_status 0 "with ranks that leave background children"
  expect_faster_than 8000 "a job whose ranks leave background children"
  expect_in out '^\[1\] done 1$'
  local pid
  read_pid background0
  expect_all_gone
}

case_signals() {
  write_hang_script
  local spec sig code
  for spec in TERM:143 INT:130 HUP:129; do
    sig=${spec%:*}
    code=${spec#*:}
    rm -f "$tmp"/*.pid
    # A background job of a script starts with SIGINT ignored; env gives it back.
    env --default-signal=INT "$run" -n 2 -- /bin/sh "$tmp/hang.sh" > "$tmp/out" 2> "$tmp/err" &
    launcher_pid=$!
    wait_for_files rank0.pid rank1.pid grandchild0.pid grandchild1.pid
    kill "-$sig" "$launcher_pid"
    wait "$launcher_pid"
    status=$?
    launcher_pid=
    expect_status "$code" "on SIG$sig"
    expect_in err "^ftccl_run: got SIG$sig; killing all ranks\$"
    expect_in err "^ftccl_run: rank 0 \(pid [0-9]+\) killed when ftccl_run got SIG$sig\$"
    expect_all_gone
  done
}

# A rank killed while it holds a UCX shared-memory file it has not unlinked yet leaves the
# file behind; ftccl_run removes it after the job. A file some process still holds open
# (another job's, in the same window) and one from before the job are kept.
case_shm() {
  local shm="$tmp/shm"
  mkdir "$shm"
  echo before > "$shm/ucx_shm_posix_old"
  sleep 2.1  # file times have 1 s steps: the launcher counts from 1 s before its start
  exec 4> "$shm/ucx_shm_posix_held"  # held open by another process during the cleanup
  cat > "$tmp/shm.sh" <<'SCRIPT'
case $FTCCL_RANK in
  0) sleep 0.8;;
  1) echo segment > "$FTCCL_RUN_SHM_DIR/ucx_shm_posix_left"; exec sleep 1000;;
esac
SCRIPT
  export FTCCL_RUN_SHM_DIR=$shm
  launch -n 2 --kill 1@0.3 -- /bin/sh "$tmp/shm.sh"
  unset FTCCL_RUN_SHM_DIR
  exec 4>&-
  expect_status 0 "when rank 0 exits 0 and rank 1 is killed"
  [ ! -e "$shm/ucx_shm_posix_left" ] || fail "the killed rank's file is still there"
  [ -e "$shm/ucx_shm_posix_old" ] || fail "a file from before the job was removed"
  [ -e "$shm/ucx_shm_posix_held" ] || fail "a file held open during the job was removed"
  expect_in err "^ftccl_run: removed 1 shared-memory file\(s\) that killed ranks left in $shm\$"
  expect_all_gone
}

# ---------------------------------------------------------------------------------------

[ -x "$run" ] || { echo "not an executable: $run"; exit 1; }
case "$case_name" in
  env|exit_status|usage|kill|stop|drop|timeout|grandchildren|signals|shm) "case_$case_name";;
  *) echo "unknown case: $case_name"; exit 1;;
esac
echo "PASS [$case_name]"
