#!/usr/bin/env bash
# Builds the lab's upstream binaries (Kubernetes, etcd, CoreDNS), its pause
# binary and its flanneld (a main of its own over flannel's packages) from the
# Go module proxy into a cache outside the checkout. A build is keyed by the
# wrapper modules and the Go version, so a warm run only checks the key and returns.
#
#   lab/build.sh               build (or reuse) and print the bin directory; progress on stderr
#   lab/build.sh --background  start a cold build detached and return (log: <cache>/build.log)
#   lab/build.sh --status      built, building (with its progress), or not built; exit 0 only when built
#   lab/build.sh --print       print the bin directory the current pins map to
#
# One build at a time (a lock in the cache): a foreground build waits for one
# running in the background, then finds the binaries in place.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SEATRIALS_LAB_CACHE:-$HOME/.cache/seatrials-lab}
key=$(cat "$here"/build/*/go.mod "$here"/build/*/go.sum "$here"/build/*/*.go "$here/build.sh" <(go version) | sha256sum | cut -c1-16)
bin="$cache/bin/$key"
log="$cache/build.log"
lock="$cache/build.lock"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns pause flanneld)

complete() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
building() { [[ -e "$lock" ]] && ! flock -n "$lock" true; }
mkdir -p "$cache"

case "${1:-}" in
  --print) echo "$bin"; exit 0 ;;
  --status)
    if complete; then echo "built: $bin"; exit 0; fi
    if building; then echo "building: $(grep -a '^lab build' "$log" | tail -n 1)"; exit 1; fi
    echo "not built"; if [[ -s "$log" ]]; then echo "last build log $log ends:"; tail -n 5 "$log"; fi; exit 1 ;;
  --background)
    if complete; then echo "$bin"; exit 0; fi
    if building; then echo "a build is already running: lab/build.sh --status"; exit 0; fi
    setsid nohup "$0" > "$log" 2>&1 < /dev/null &
    echo "building in the background (a cold build takes about 8 minutes): lab/build.sh --status, log $log"
    exit 0 ;;
  "") ;;
  *) echo "usage: lab/build.sh [--background|--status|--print]" >&2; exit 2 ;;
esac

if complete; then echo "$bin"; exit 0; fi
exec 9> "$lock"
if ! flock -n 9; then
  echo "lab build: waiting for the build already running (lab/build.sh --status)" >&2
  flock 9
fi
if complete; then echo "$bin"; exit 0; fi

started=$SECONDS
# go build -v names each package it compiles (cached ones are not named): counted
# against the component's package total, that is the build's progress.
build() {  # build NAME DIR TARGET OUTPUT [go build flags...]
  local name=$1 dir=$2 target=$3 out=$4 total n=0 shown=$SECONDS line
  shift 4
  total=$(cd "$dir" && go list -deps "$target" | wc -l)
  echo "lab build $name: starting, $total packages (elapsed $((SECONDS - started)) s)" >&2
  (cd "$dir" && go build -v -p 2 -trimpath -o "$out" "$@" "$target" 2>&1) | while IFS= read -r line; do
    if [[ "$line" == *[[:space:]:]* ]]; then echo "$line" >&2; continue; fi  # not a package name: a message
    n=$((n + 1))
    if ((SECONDS - shown >= 15)); then
      echo "lab build $name: $n/$total packages compiled (elapsed $((SECONDS - started)) s)" >&2
      shown=$SECONDS
    fi
  done
  echo "lab build $name: done (elapsed $((SECONDS - started)) s)" >&2
}

k8s_version=$(cd "$here/build/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

rm -rf "$bin.partial" && mkdir -p "$bin.partial"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# `tool` builds every tool the wrapper module declares; -p 2 keeps memory bounded.
build etcd "$here/build/etcd" go.etcd.io/etcd/server/v3 "$bin.partial/etcd" -ldflags "-s -w"
build coredns "$here/build/coredns" tool "$bin.partial/" -ldflags "-s -w"
build pause "$here/build/pause" . "$bin.partial/pause" -ldflags "-s -w"
build "kubernetes $k8s_version" "$here/build/kubernetes" tool "$bin.partial/" -ldflags "$ldflags"

# flanneld: a main of the lab's own over flannel's packages (upstream's main links the Tencent backend,
# whose SDK module is not served), stamped with flannel's version like upstream's.
flannel_version=$(cd "$here/build/flannel" && go list -m -f '{{.Version}}' github.com/flannel-io/flannel)
build "flannel $flannel_version" "$here/build/flannel" . "$bin.partial/flanneld" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel_version"
rm -rf "$bin" && mv "$bin.partial" "$bin"
complete
# Builds of older pins are of no use any more (a few hundred MB each).
find "$cache/bin" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
echo "lab build: complete in $((SECONDS - started)) s" >&2
echo "$bin"
