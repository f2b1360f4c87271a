# Sourced by the test scripts: sets $port to a free TCP port on 127.0.0.1 below the
# kernel's ephemeral range, so that no socket bound to port 0 meanwhile (each rank's
# health listener, UCX) can take it before rank 0 binds it for FTCCL_COMM_ID.
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$low" -gt 11000 ] 2>/dev/null || low=32768
port=$(( 10000 + RANDOM % (low - 11000) ))
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$(( port + 1 )); done
