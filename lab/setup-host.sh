#!/usr/bin/env bash
# Installs what the lab needs on a Debian 12 machine (root); a no-op when all of it is present.
#
#   Debian packages: the container runtime, CNI plugins, the probe image's busybox, the registry,
#                    and the network and namespace tools the lab drives; Chromium and its fonts for the
#                    report's browser tests.
#   Kernel:          bridge, veth, overlay, br_netfilter and xt_physdev (loaded when they are modules).
#   Not from Debian: Go >= 1.24 for lab/build.sh (Debian 12 ships 1.19), and a Python >= 3.11 with
#                    moto[server] (which brings boto3 and cryptography) for lab/lab; checked, not installed.
set -euo pipefail

packages=(
  containerd runc containernetworking-plugins  # one containerd per node, runc, bridge/host-local/loopback/portmap
  busybox-static                               # the probe image
  docker-registry                              # the real registry behind the Harbor double
  iptables conntrack iproute2 util-linux procps # VPC filter, kube-proxy, namespaces (nsenter, unshare), sysctl
  ca-certificates
  libokio-java                                 # the project's tests: okio's real decoder, for client-pem-not-base64
  chromium fonts-dejavu-core                   # the project's tests: signoff.html in a real browser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-host: installing ${missing[*]}" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  # The lab runs its own containerd per node; Debian's service (if systemd started one) is not used.
fi

# Kernel features: built in on some kernels, modules on Debian's. Loading br_netfilter makes the
# bridges of every namespace pass iptables by default; the lab only relies on it inside its own.
if [[ ! -d /proc/sys/net/bridge ]] && command -v modprobe >/dev/null; then
  modprobe -a bridge veth overlay br_netfilter xt_physdev
fi

if ! go version 2>/dev/null | grep -qE 'go1\.(2[4-9]|[3-9][0-9])'; then
  echo "setup-host: Go >= 1.24 is needed by lab/build.sh (https://go.dev/dl/); Debian 12's golang is too old" >&2
fi
python=${SEATRIALS_LAB_PYTHON:-python3}
if ! "$python" -c 'import boto3, cryptography, moto.server' 2>/dev/null; then
  echo "setup-host: $python lacks moto[server]: make venv (then .venv/bin/python lab/lab ...)" >&2
fi
echo "setup-host: ready" >&2
