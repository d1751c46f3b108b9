#!/usr/bin/env bash
# Builds the lab's upstream binaries (Kubernetes, etcd, CoreDNS) and its pause
# binary from the Go module proxy into a cache outside the checkout. A build is
# keyed by the wrapper modules and the Go version, so a warm run only checks the
# key and returns.
#
#   lab/build.sh            build (or reuse) and print the bin directory
#   lab/build.sh --print    print the bin directory the current pins map to
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SEATRIALS_LAB_CACHE:-$HOME/.cache/seatrials-lab}
key=$(cat "$here"/build/*/go.mod "$here"/build/*/go.sum "$here"/build/*/*.go "$here/build.sh" <(go version) | sha256sum | cut -c1-16)
bin="$cache/bin/$key"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns pause)

if [[ "${1:-}" == "--print" ]]; then echo "$bin"; exit 0; fi

complete() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

k8s_version=$(cd "$here/build/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$bin.partial"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# `tool` builds every tool the wrapper module declares; -p 2 keeps memory bounded.
echo "building etcd into $bin" >&2
(cd "$here/build/etcd" && go build -p 2 -trimpath -ldflags "-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3)
echo "building CoreDNS and pause into $bin" >&2
(cd "$here/build/coredns" && go build -p 2 -trimpath -ldflags "-s -w" -o "$bin.partial/" tool)
(cd "$here/build/pause" && go build -trimpath -ldflags "-s -w" -o "$bin.partial/pause" .)
echo "building Kubernetes $k8s_version into $bin (cold: about 8 minutes on 2 cores with an empty Go cache)" >&2
(cd "$here/build/kubernetes" && go build -p 2 -trimpath -ldflags "$ldflags" -o "$bin.partial/" tool)
rm -rf "$bin" && mv "$bin.partial" "$bin"
complete
# Builds of older pins are of no use any more (a few hundred MB each).
find "$cache/bin" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
echo "$bin"
