"""fanout.sh against real busybox, inside a private network namespace the test
creates (`unshare --net`): a listening probe, a closed port, a black hole and
an unreachable network, all probed in parallel by one invocation."""

import math
import shutil
import subprocess
import sys
import time
from importlib import resources

import pytest

from seatrials.network import evidence, paths
from seatrials.network.paths import Target
from seatrials.options import Settings

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX or not shutil.which("unshare"),
                                reason="needs busybox (Debian busybox-static) and unshare")

SCRIPT = resources.files("seatrials.network").joinpath("fanout.sh").read_text()

# Everything below runs in a fresh network namespace: 10.99.0.0/24 exists only there.
SETUP = """
set -e
ip link set lo up
ip addr add 10.99.0.1/32 dev lo
ip route add 10.99.0.2/32 dev lo
iptables -A INPUT -d 10.99.0.2 -j DROP
mkdir -p {www} && echo "probe-pod-a worker-1" > {www}/id && echo ok > {www}/healthz
{bb} httpd -f -p 10.99.0.1:9376 -h {www} &
server=$!
trap 'kill $server' EXIT  # the probe server goes with the namespace
for i in $(seq 100); do echo | {bb} nc 10.99.0.1 9376 >/dev/null 2>&1 && break; sleep 0.05; done  # it listens
"""


def fan_out(tmp_path, targets, timeout=1, retries=1, in_flight=paths.MIN_IN_FLIGHT, servers=""):
    """stdout of one fan-out and its seconds; `servers`: more shell to run in the namespace before it."""
    www = tmp_path / "www"
    script = SETUP.format(www=www, bb=BUSYBOX) + servers + f'{BUSYBOX} sh -c "$0" "$@"'
    args = ["unshare", "--net", "sh", "-c", script, SCRIPT, "fanout", str(timeout), str(retries),
            str(in_flight), *(t.arg() for t in targets)]
    env = {"PATH": f"{tmp_path}/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    (tmp_path / "bin").mkdir()
    applets = ("nc", "ping", "nslookup", "timeout", "date", "awk", "tail", "tr", "cut", "sleep", "sed", "grep",
               "head", "wc", "mktemp", "rm", "ip", "mkfifo")
    for applet in applets:
        (tmp_path / "bin" / applet).symlink_to(BUSYBOX)  # the pod's busybox, not the machine's tools
    started = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    return out.stdout, time.monotonic() - started


def test_every_outcome_in_one_parallel_pass(tmp_path):
    targets = [
        Target("pod-to-pod", "worker-1", "tcp", "10.99.0.1", "9376"),
        Target("pod-to-pod", "closed", "tcp", "10.99.0.1", "9999"),
        Target("pod-to-pod", "blackhole", "tcp", "10.99.0.2", "9376"),
        Target("pod-to-pod", "nowhere", "tcp", "10.98.0.1", "9376"),
        Target("pod-to-pod-icmp", "worker-1", "icmp", "10.99.0.1"),
        Target("external-ip", "*", "backends", "10.99.0.1", "9376", ("worker-1+worker-9", "3")),
    ]
    stdout, elapsed = fan_out(tmp_path, targets)
    results = {(r.kind, r.target): r for r in paths.parse("src", "pod", targets, stdout, None)}
    assert results[("pod-to-pod", "worker-1")].outcome == "ok"
    assert results[("pod-to-pod", "worker-1")].detail == "answered by probe-pod-a worker-1"
    assert results[("pod-to-pod", "closed")].outcome == "refused"
    assert results[("pod-to-pod", "blackhole")].outcome == "timeout"
    assert results[("pod-to-pod", "blackhole")].tries == 2  # the failure was retried, once
    assert results[("pod-to-pod", "worker-1")].tries == 1  # the success was not
    assert results[("pod-to-pod", "nowhere")].outcome == "no-route"
    assert results[("pod-to-pod-icmp", "worker-1")].outcome == "ok"
    assert results[("external-ip", "worker-1")].outcome == "ok"
    assert results[("external-ip", "worker-1")].tries == 0  # many requests to see every backend, none a retry
    assert results[("external-ip", "worker-9")].outcome != "ok"
    assert "its backend never answered" in results[("external-ip", "worker-9")].detail
    assert "answered: worker-1;" in results[("external-ip", "worker-9")].detail
    # nothing went unanswered: worker-9 was asked for until a healthy backend could not have stayed unseen
    assert results[("external-ip", "worker-9")].tries >= 2 * (math.log(2) + 11.5)
    # parallel: the black hole's two timed-out tries and the 3 s backends deadline overlap
    assert elapsed < 8


HOLDING_PEER = """
import socket, sys, time
server = socket.create_server(("10.99.0.1", 9380))
open(sys.argv[2], "w").close()  # listening
while True:
    conn, _ = server.accept()
    conn.recv(1024)
    conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nslow-peer worker-2\\n")
    time.sleep(float(sys.argv[1]))  # answered, and the close comes late
    conn.close()
"""


def test_a_peer_that_answered_and_was_slow_to_close_is_a_path_that_works(tmp_path):
    """On a node short of CPU the answer can come back and the connection's end not within the try's time, so
    nc is ended by `timeout` with the answer in hand (lab, 3 + 12 on 2 cores: "host-to-host worker-2 -> master-1:
    timeout after 2 tries, HTTP/1.1 200 OK ..."): the answer proves the path both ways, and one try is enough."""
    (tmp_path / "peer.py").write_text(HOLDING_PEER)
    ready = tmp_path / "listening"
    holding = (f"{BUSYBOX} timeout 10 {sys.executable} {tmp_path / 'peer.py'} 5 {ready} >/dev/null 2>&1 &\n"
               f"for i in $(seq 100); do [ -e {ready} ] && break; sleep 0.05; done\n")
    targets = [Target("host-to-host", "worker-2", "tcp", "10.99.0.1", "9380")]
    stdout, _ = fan_out(tmp_path, targets, servers=holding)
    [result] = paths.parse("src", "host", targets, stdout, None)
    assert (result.outcome, result.tries) == ("ok", 1), stdout
    assert result.detail == "answered by slow-peer worker-2"


def test_failures_are_retried_once_every_first_try_is_done(tmp_path):
    """A probe refused in a busy moment (here: a server that starts a second late) is tried again after the first
    pass, which a black hole holds open for its timeout (3 s: the wait and nc's own second), not at once within
    that moment."""
    late = (f"{{ sleep 1; {BUSYBOX} timeout 8 {BUSYBOX} httpd -f -p 10.99.0.1:9381 -h {tmp_path / 'www'}; }} "
            ">/dev/null 2>&1 &\n")
    targets = [Target("pod-to-pod", "late", "tcp", "10.99.0.1", "9381"),
               Target("pod-to-pod", "blackhole", "tcp", "10.99.0.2", "9376")]
    stdout, _ = fan_out(tmp_path, targets, timeout=2, servers=late)
    results = {r.target: r for r in paths.parse("src", "pod", targets, stdout, None)}
    assert (results["late"].outcome, results["late"].tries) == ("ok", 2), stdout
    assert (results["blackhole"].outcome, results["blackhole"].tries) == ("timeout", 2)


def test_a_backend_is_not_given_up_on_after_one_round_with_a_request_lost(tmp_path):
    """Requests to the black hole get no answer, as a request or two do on a busy healthy cluster: the
    backend not seen is asked for until a healthy one would have answered but for 1 chance in 1000."""
    targets = [Target("external-ip", "*", "backends", "10.99.0.1+10.99.0.2", "9376", ("worker-1+worker-9", "1"))]
    stdout, _ = fan_out(tmp_path, targets)
    results = {r.target: r for r in paths.parse("src", "pod", targets, stdout, None)}
    assert results["worker-1"].outcome == "ok" and "its backend never answered" in results["worker-9"].detail
    assert "timed out" in results["worker-9"].detail  # the unanswered requests are shown
    assert results["worker-9"].tries >= 2 * (math.log(2) + 6.9)  # one round (8 requests) is not enough


def test_the_backends_of_a_large_cluster_are_reported_whole(tmp_path):
    """Sixty expected backends, one answering: the line names them all (cut at 400 characters it lost the
    answering one: worker-1 read as never answered)."""
    want = "+".join(["worker-1", *(f"worker-{i}" for i in range(100, 159))])
    targets = [Target("external-ip", "*", "backends", "10.99.0.1", "9376", (want, "1"))]
    stdout, _ = fan_out(tmp_path, targets)
    results = {r.target: r for r in paths.parse("src", "pod", targets, stdout, None)}
    assert results["worker-1"].outcome == "ok" and results["worker-158"].outcome == "timeout"
    # why each of the 59 is missing is one string, not one per backend (N³ bytes over a large cluster)
    assert len({id(r.detail) for r in results.values() if r.outcome != "ok"}) == 1
    assert "answered: worker-1;" in results["worker-158"].detail


def test_probes_in_flight_are_bounded_by_a_sliding_window(tmp_path):
    """Six black holes (1 s each, no retry): two at a time take three rounds; six at a time, one."""
    holes = [Target("pod-to-pod", f"hole-{i}", "tcp", "10.99.0.2", "9376") for i in range(6)]
    stdout, narrow = fan_out(tmp_path, holes, retries=0, in_flight=2)
    assert [r.outcome for r in paths.parse("src", "pod", holes, stdout, None)] == ["timeout"] * 6
    (tmp_path / "bin").rename(tmp_path / "bin-narrow")
    _, wide = fan_out(tmp_path, holes, retries=0, in_flight=6)
    assert narrow >= 3 > wide


def test_a_source_whose_every_target_fails_is_heard_out_within_its_deadline(tmp_path):
    """256 black holes (1 s, one retry) in the window the plan gives them: the fan-out ends inside the exec's
    deadline less its margin for a busy node, and in four windows, where 32 at a time took eight."""
    holes = [Target("pod-to-pod", f"hole-{i}", "tcp", "10.99.0.2", "9376") for i in range(256)]
    stdout, took = fan_out(tmp_path, holes, timeout=1, retries=1, in_flight=paths.in_flight(len(holes)))
    assert [r.outcome for r in paths.parse("src", "pod", holes, stdout, None)] == ["timeout"] * 256
    settings = Settings(None, None, probe_timeout=1, probe_retries=1)
    assert took < paths.fanout_deadline(len(holes), settings) - 30
    assert took < 8 * 2  # eight windows of a try and a retry: the fixed window of 32


def test_the_window_widens_with_the_targets_and_the_deadline_follows():
    """Up to 128 targets (the lab's clusters, 15 nodes) the window stays 32; a source of 500 or 1000 nodes
    (three pod-IP targets a node) fails in a handful of windows, and its deadline covers them."""
    settings = Settings(None, None)
    assert [paths.in_flight(n) for n in (1, 75, 128, 129, 400, 512, 1500, 3000)] == [32, 32, 32, 33, 100, 128,
                                                                                       128, 128]
    assert all(math.ceil(n / paths.in_flight(n)) <= 4 for n in range(1, 513))
    per_window = 2 + 1 * 1  # a 2 s try, then a retry at half of it: fanout.sh
    for n in (75, 1500, 3000):
        assert paths.fanout_deadline(n, settings) > math.ceil(n / paths.in_flight(n)) * per_window + 4 * 3


def test_a_target_without_a_result_is_not_run_never_ok(tmp_path):
    targets = [Target("pod-to-pod", "worker-1", "tcp", "10.99.0.1", "9376")]
    results = paths.parse("src", "pod", targets, "garbage\n", None)
    assert [r.outcome for r in results] == ["not-run"]


def test_the_nodes_own_routes_and_kube_proxy_health_are_read_as_evidence(tmp_path):
    targets = [Target("routes", "n", "routes", "-"), Target("kube-proxy", "n", "health", "10.99.0.1", "9376"),
               Target("kube-proxy", "down", "health", "10.99.0.1", "10256")]
    stdout, _ = fan_out(tmp_path, targets)
    results = {(r.kind, r.target): r for r in paths.parse("n", "host", targets, stdout, None)}
    routes = evidence.parse_routes(results[("routes", "n")].detail)
    assert evidence.route_to(routes, "10.99.0.2/32").dev == "lo"  # the whole table, not a truncated line
    assert results[("kube-proxy", "n")].outcome == "ok"
    assert results[("kube-proxy", "down")].outcome == "refused"
