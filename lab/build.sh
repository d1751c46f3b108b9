#!/usr/bin/env bash
# Builds the lab's upstream binaries (one Kubernetes release, etcd, CoreDNS), its pause
# binary and its flanneld (a main of its own over flannel's packages) from the Go module
# proxy into a cache outside the checkout. A build is keyed by the Kubernetes version,
# the wrapper modules and the Go version, so a warm run only checks the key and returns;
# the builds of other versions stay cached.
#
#   lab/build.sh [--kubernetes V]               build (or reuse) and print the bin directory; progress on stderr
#   lab/build.sh [--kubernetes V] --background  start a cold build detached and return (log: <cache>/build-<version>.log)
#   lab/build.sh [--kubernetes V] --status      built, building (with its progress), or not built; exit 0 only when built
#   lab/build.sh [--kubernetes V] --print       print the bin directory the version and pins map to
#   --peer  also Kubernetes' own e2e test binary and agnhost of the same release (bin/peer/: lab/lab bench --peer)
#   --kwok  also KWOK (bin/kwok, its own wrapper module: fake nodes for the scale bench)
# Each is a step of its own, cached beside the binaries: a build without them never waits for them.
#
# V is a minor (1.37: the release lab/build/kubernetes/releases pins for it; the first
# line there is the default) or a full version (v1.36.3) the Go module proxy serves.
# One build at a time (a lock in the cache): a build waits for one running in the
# background, then finds the binaries in place if it was the same version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SEATRIALS_LAB_CACHE:-$HOME/.cache/seatrials-lab}
releases="$here/build/kubernetes/releases"
usage="usage: lab/build.sh [--kubernetes MINOR|VERSION] [--peer] [--kwok] [--background|--status|--print]"
die() { echo "lab build: $*" >&2; exit 2; }

asked="" mode="" extras=()
while (($#)); do
  case "$1" in
    --peer|--kwok) extras+=("$1"); shift ;;
    --kubernetes) (($# >= 2)) || die "--kubernetes needs a version (a minor such as 1.37 or a release such as v1.37.2)"
                  asked=$2; shift 2 ;;
    --kubernetes=*) asked=${1#*=}; shift ;;
    --print|--status|--background) [[ -z "$mode" ]] || die "$usage"; mode=$1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done

pinned() { grep -v '^#' "$releases" | awk -v m="$1" 'NF == 2 && (m == "" || $1 == m) {print $2; exit}'; }
minors() { grep -v '^#' "$releases" | awk 'NF == 2 {printf "%s%s", sep, $1; sep = ", "}'; }
# The release to build: the pinned one of a minor, or a full version as given (v added).
resolve() {
  local v=${1#v}
  if [[ -z "$v" ]]; then pinned ""
  elif [[ "$v" =~ ^1\.[0-9]+$ ]]; then
    pinned "$v" | grep . || die "kubernetes $1: no release of this minor is pinned (pinned: $(minors)); give a full version such as v$v.0"
  elif [[ "$v" =~ ^1\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?$ ]]; then echo "v$v"
  else die "kubernetes $1: not a version (a minor such as 1.37 or a release such as v1.37.2)"
  fi
}
k8s_version=$(resolve "$asked")
key=$(cat "$here"/build/*/go.mod "$here"/build/*/go.sum "$here"/build/*/*.go "$here/build.sh" <(go version) \
      <(echo "$k8s_version") | sha256sum | cut -c1-16)
bin="$cache/bin/$k8s_version-$key"
log="$cache/build-$k8s_version.log"
lock="$cache/build.lock"
# Kubernetes commands built from k8s.io/kubernetes (a wrapper module's `tool` directives);
# add one here to build it too (the e2e test binary is built by --peer below).
k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)
binaries=("${k8s_commands[@]}" etcd coredns pause flanneld)
extra_binaries=()
for e in "${extras[@]}"; do
  case "$e" in --peer) extra_binaries+=(peer/e2e.test peer/agnhost) ;; --kwok) extra_binaries+=(kwok) ;; esac
done

base_complete() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
complete() { base_complete && for b in "${extra_binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
building() { [[ -e "$lock" ]] && ! flock -n "$lock" true; }
mkdir -p "$cache"

case "$mode" in
  --print) echo "$bin"; exit 0 ;;
  --status)
    if complete; then echo "built: $bin"; exit 0; fi
    if building; then echo "building: $(grep -ahs '^lab build' "$cache"/build-*.log | tail -n 1)"; exit 1; fi
    echo "not built"; if [[ -s "$log" ]]; then echo "last build log $log ends:"; tail -n 5 "$log"; fi; exit 1 ;;
  --background)
    if complete; then echo "$bin"; exit 0; fi
    setsid nohup "$0" --kubernetes "$k8s_version" "${extras[@]}" > "$log" 2>&1 < /dev/null &
    echo "building Kubernetes $k8s_version in the background (cold: about 12 minutes, after any build already" \
         "running): lab/build.sh --kubernetes $k8s_version --status, log $log"
    exit 0 ;;
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

# The wrapper module of the release, derived from the release's own go.mod: it requires its
# staging modules (k8s.io/api, ...) at v0.0.0 and replaces them with ./staging/src/k8s.io/<name>,
# which a module download lacks, so each is replaced here with its published v0.<minor>.<patch>.
# The release's go and godebug lines are kept, so the binaries behave as upstream builds them.
kubernetes_module() {  # kubernetes_module DIR
  local dir=$1 gomod need have staging m
  if ! gomod=$(cd "$cache" && go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$k8s_version" 2>&1); then
    gomod=$(tail -n 1 <<< "$gomod" | sed -E 's/^[[:space:]]*(server response: )?//' | cut -c1-160)
    die "kubernetes $k8s_version: the Go module proxy does not serve it ($gomod)"
  fi
  need=$(awk '$1 == "go" {print $2; exit}' "$gomod") have=$(go env GOVERSION | sed 's/^go//')
  if [[ "$(printf '%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]]; then
    die "kubernetes $k8s_version needs Go >= $need (this machine has go$have)"
  fi
  staging=$(sed -nE 's#^(replace)?[[:space:]]*(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\2#p' "$gomod")
  [[ -n "$staging" ]] || die "kubernetes $k8s_version: its go.mod replaces no staging module; not a release?"
  mkdir -p "$dir"
  {
    echo "// Generated by lab/build.sh from the go.mod of k8s.io/kubernetes@$k8s_version."
    echo "module seatrials.lab/kubernetes"
    awk '/^godebug \(/ {block = 1} block || /^(go|godebug) / {print} /^\)/ {block = 0}' "$gomod"
    echo "require k8s.io/kubernetes $k8s_version"
    echo "tool ("; printf '\tk8s.io/kubernetes/cmd/%s\n' "${k8s_commands[@]}"; echo ")"
    echo "replace ("
    for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${k8s_version#v1.}"; done
    echo ")"
  } > "$dir/go.mod"
}

minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

export CGO_ENABLED=0 GOFLAGS=-mod=mod
if ! base_complete; then
rm -rf "$bin.partial"
module="$bin.partial/kubernetes-module"  # kept beside the binaries: the go.mod and go.sum they were built from
kubernetes_module "$module"
# `tool` builds every tool the wrapper module declares; -p 2 keeps memory bounded.
build etcd "$here/build/etcd" go.etcd.io/etcd/server/v3 "$bin.partial/etcd" -ldflags "-s -w"
build coredns "$here/build/coredns" tool "$bin.partial/" -ldflags "-s -w"
build pause "$here/build/pause" . "$bin.partial/pause" -ldflags "-s -w"
build "kubernetes $k8s_version" "$module" tool "$bin.partial/" -ldflags "$ldflags"

# flanneld: a main of the lab's own over flannel's packages (upstream's main links the Tencent backend,
# whose SDK module is not served), stamped with flannel's version like upstream's.
flannel_version=$(cd "$here/build/flannel" && go list -m -f '{{.Version}}' github.com/flannel-io/flannel)
build "flannel $flannel_version" "$here/build/flannel" . "$bin.partial/flanneld" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel_version"
rm -rf "$bin" && mv "$bin.partial" "$bin"
fi

# The extras, each into place only once whole. The peer: e2e.test (`go test -c`) and agnhost from a copy of
# the release's wrapper module (its go.sum gains the test packages' modules; kept beside them).
for e in "${extras[@]}"; do
  case "$e" in
    --peer)
      [[ -x "$bin/peer/e2e.test" && -x "$bin/peer/agnhost" ]] && continue
      rm -rf "$bin/peer.partial" && mkdir -p "$bin/peer.partial" && cp -r "$bin/kubernetes-module" "$bin/peer.partial/module"
      build agnhost "$bin/peer.partial/module" k8s.io/kubernetes/test/images/agnhost "$bin/peer.partial/agnhost" -ldflags "$ldflags"
      echo "lab build e2e.test: starting (go test -c k8s.io/kubernetes/test/e2e; elapsed $((SECONDS - started)) s)" >&2
      (cd "$bin/peer.partial/module" && go test -c -vet=off -p 2 -trimpath -ldflags "$ldflags" \
         -o "$bin/peer.partial/e2e.test" k8s.io/kubernetes/test/e2e)
      echo "lab build e2e.test: done (elapsed $((SECONDS - started)) s)" >&2
      rm -rf "$bin/peer" && mv "$bin/peer.partial" "$bin/peer" ;;
    --kwok)
      [[ -x "$bin/kwok" ]] && continue
      kwok_version=$(cd "$here/build/kwok" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok)
      mkdir -p "$bin/kwok.partial/stages" && build "kwok $kwok_version" "$here/build/kwok" tool "$bin/kwok.partial/" -ldflags "-s -w"
      # KWOK's own stages (how fake nodes and pods move through their lifecycle), as its release ships them
      kwok_dir=$(cd "$here/build/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
      cp "$kwok_dir"/kustomize/stage/node/fast/node-initialize.yaml \
         "$kwok_dir"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         "$kwok_dir"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml "$bin/kwok.partial/stages/"
      rm -rf "$bin/kwok-stages" && mv "$bin/kwok.partial/stages" "$bin/kwok-stages"
      mv "$bin/kwok.partial/kwok" "$bin/kwok" && rmdir "$bin/kwok.partial" ;;
  esac
done
complete
echo "lab build: complete in $((SECONDS - started)) s" >&2
echo "$bin"
