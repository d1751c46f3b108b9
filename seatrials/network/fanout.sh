# seatrials fan-out, run inside a probe pod with busybox sh by ONE exec per source:
# targets are probed in parallel, at most IN_FLIGHT at a time (a sliding window:
# a free slot starts the next one), and only failures are retried, once every
# first try is done, so a source costs one API call and about one timeout per
# IN_FLIGHT failing targets. A retry waits half as long as the first try: the
# first connect timeout already covered the kernel's own SYN retransmission.
#
#   sh -c "$(cat fanout.sh)" fanout TIMEOUT RETRIES IN_FLIGHT TARGET...
#   TARGET = id,tcp,ADDRESS,PORT | id,icmp,ADDRESS,- | id,dns,NAME,- |
#            id,backends,ADDR1+ADDR2...,PORT,NODE1+NODE2...,DEADLINE_SECONDS |
#            id,health,ADDRESS,PORT (GET /healthz) | id,routes,-,- (the IPv4 routes, whole)
#
# Output: one line per target, "ST|id|exit code|tries|output" (output with tabs
# for newlines). Busybox only: nc, ping, nslookup, timeout (wget -T crashes in
# some static busybox builds, so HTTP is spoken through nc).
T=$1
R=$2
IN_FLIGHT=$3
shift 3
RETRY_WAIT=$((T / 2 > 0 ? T / 2 : 1))

# W is the wait of the current try (see single)
tcp() { printf 'GET /id HTTP/1.0\r\n\r\n' | timeout $((W + 1)) nc -w "$W" "$1" "$2" 2>&1; }
icmp() { ping -c 1 -W "$W" "$1" 2>&1; }
# busybox nslookup ignores the search list: ask the service name under the
# cluster's "svc.<domain>" search entry, one bounded lookup per try
dns() {
  suffix=$(sed -n 's/^search //p' /etc/resolv.conf | tr ' ' '\n' | grep '^svc\.' | head -n 1)
  timeout "$W" nslookup "$1${suffix:+.$suffix}" 2>&1
}

health() { printf 'GET /healthz HTTP/1.0\r\n\r\n' | timeout $((W + 1)) nc -w "$W" "$1" "$2" 2>&1; }
routes() { ip -4 route 2>&1; }

# LIMIT: how much of an output to keep (a routing table is kept whole)
report() { printf 'ST|%s|%s|%s|%s\n' "$1" "$2" "$3" "$(printf '%s' "$4" | tr '\r\n|' '\t\t ' | cut -c1-"${LIMIT:-400}")"; }

# One target's tries: on the first pass one, at the full wait; a failure is then left in $failed for the
# retries, which run once the first pass is over (see the end).
single() {
  id=$1 mode=$2 addr=$3 port=$4 pass=$5
  if [ "$pass" = first ]; then n=1 W=$T last=1; else n=2 W=$RETRY_WAIT last=$((R + 1)); fi
  while :; do
    out=$($mode "$addr" "$port")
    rc=$?
    # nc exits 0 when the peer closes, even with nothing said: only an answer counts; and an answer counts
    # however nc ended (a peer that answered and was slow to close, on a node short of CPU, is a path that works)
    [ "$mode" = tcp ] && [ $rc -eq 0 ] && [ -z "$out" ] && rc=1 && out="connected, no answer"
    case "$mode:$out" in tcp:HTTP/* | health:HTTP/*) rc=0 ;; esac
    [ $rc -eq 0 ] || [ $n -ge $last ] && break
    n=$((n + 1))
  done
  if [ $rc -ne 0 ] && [ "$pass" = first ] && [ "$R" -gt 0 ]; then
    echo "$id,$mode,$addr,$port" >> "$failed"  # one short line: appends from parallel probes stay whole
    return
  fi
  if [ "$mode" = routes ]; then LIMIT=16000 report "$id" "$rc" "$n" "$out"; else report "$id" "$rc" "$n" "$out"; fi
}

# Ask the load-balanced addresses until every expected backend node has answered
# (the e2e framework's way: the set of answers is the result). Requests go out in
# parallel rounds of 4 per expected backend (at most 64), so a backend that times
# out costs one connect timeout per round, not one per request. The balancer
# draws backends at random, so a healthy backend can go unseen for a while: the
# asking stops without it only once its absence says something: after the
# deadline, when some requests got no answer (a backend that drops them) and a
# healthy backend would have answered one of them but for a chance under 1 in
# 1000 (n >= b (ln b + 6.9) for b backends: a request or two lost to a busy node
# is no reason to give up on a backend after one round), or else after requests
# enough for a chance under 1 in 100000 (n >= b (ln b + 11.5)); at four times
# the deadline in any case.
backends() {
  id=$1 addrs=$(echo "$2" | tr '+' ' ') port=$3 want=$(echo "$4" | tr '+' ' ') now=$(date +%s)
  deadline=$((now + $5)) last=$((now + 4 * $5)) nwant=$(echo $want | wc -w)
  per_round=$((nwant * 4))
  [ $per_round -gt 64 ] && per_round=64  # bounded: every request is a process in a small pod
  l=0 x=1  # ln b, from above: ceil(log2 b) * 0.7 (busybox's awk may lack log)
  while [ $x -lt "$nwant" ]; do x=$((x * 2)) l=$((l + 1)); done
  enough=$((nwant * (12 + (l * 7 + 9) / 10))) suspect=$((nwant * (7 + (l * 7 + 9) / 10)))
  seen=" " errors="" n=0 replies=$(mktemp -d)
  while :; do
    i=0
    while [ $i -lt $per_round ]; do
      for a in $addrs; do
        [ $i -lt $per_round ] || break
        (printf 'GET /id HTTP/1.0\r\n\r\n' | timeout 2 nc -w 1 "$a" "$port" > "$replies/$i.$a" 2>&1) &
        i=$((i + 1))
      done
    done
    wait
    n=$((n + per_round))
    for f in "$replies"/*; do
      node=$(tail -n 1 "$f" | awk 'NF == 2 {print $2}')
      if [ -n "$node" ]; then
        case "$seen" in *" $node "*) ;; *) seen="$seen$node " ;; esac
      else
        errors="$errors ${f##*.}:$(tr '\r\n' '  ' < "$f" | cut -c1-60);"
      fi
      rm -f "$f"
    done
    missing=""
    for w in $want; do case "$seen" in *" $w "*) ;; *) missing="$missing $w" ;; esac; done
    [ -z "$missing" ] && break
    now=$(date +%s)
    [ "$now" -ge $last ] && break
    [ "$now" -ge $deadline ] && { [ -n "$errors" ] && [ $n -ge "$suspect" ] || [ $n -ge "$enough" ]; } && break
  done
  rm -rf "$replies"
  # kept whole (every backend's name: thousands of characters on hundreds of nodes; the errors cut at 200)
  LIMIT=$((400 + 80 * nwant)) report "$id" 0 "$n" "seen=[$seen] missing=[$missing ] errors=[$(echo "$errors" | cut -c1-200)]"
}

# The window: a FIFO holding one line per free slot; a probe takes one before it
# starts and gives it back when it ends.
slots=$(mktemp -u)
mkfifo "$slots"
exec 3<> "$slots"
rm -f "$slots"
i=0
while [ $i -lt "$IN_FLIGHT" ]; do echo >&3; i=$((i + 1)); done
# PASS TARGET...: each target in the window, then wait for the last
window() {
  pass=$1
  shift
  for t in "$@"; do
    IFS=,
    # shellcheck disable=SC2086
    set -- $t
    unset IFS
    read -r _ <&3
    if [ "$2" = backends ]; then
      (backends "$1" "$3" "$4" "$5" "$6"; echo >&3) &
    else
      (single "$1" "$2" "$3" "$4" "$pass"; echo >&3) &
    fi
  done
  wait
}
# Every first try, then the retries of what failed: a failure that only a busy moment made (a node short of CPU
# while every probe of every source starts) is tried again once that moment has passed, not within it.
failed=$(mktemp)
window first "$@"
# shellcheck disable=SC2046
window retry $(cat "$failed")
rm -f "$failed"
