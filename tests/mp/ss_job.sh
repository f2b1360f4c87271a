# Sourced by the tests that look at a running job's sockets with ss (iproute2): fails
# without ss, makes the scratch dir $tmp, and on exit kills the launcher (if
# $launcher_pid is set) and removes $tmp.
# usage: . ss_job.sh TEST_NAME
if ! command -v ss > /dev/null; then
  echo "$1: needs ss (iproute2)"
  exit 1
fi
tmp=$(mktemp -d)
launcher_pid=
cleanup() {
  [ -n "$launcher_pid" ] && kill "$launcher_pid" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
