// flanneld for the seatrials lab: flannel's own packages (the Kubernetes subnet manager, the
// vxlan and host-gw backends, the iptables traffic manager) driven the way upstream's main.go
// drives them, with only what the lab runs linked in. Upstream's main imports every backend, and
// the Tencent VPC backend's SDK module is not served by the module proxy, so it cannot be built here.
//
// One addition: flannel's CNI plugin is not packaged (Debian's CNI plugins have none), so once the
// lease is written to subnet.env this main writes the node's CNI configuration itself, from the
// ConfigMap's cni-conf.json, with each "flannel" plugin replaced by the delegate configuration the
// flannel plugin would hand to the bridge plugin (flannel-io/cni-plugin, doCmdAdd).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/flannel-io/flannel/pkg/version"
	log "k8s.io/klog/v2"
)

type options struct {
	kubeSubnetMgr             bool
	kubeAPIURL                string
	kubeConfigFile            string
	kubeAnnotationPrefix      string
	iface                     string
	publicIP                  string
	ipMasq                    bool
	subnetFile                string
	netConfPath               string
	iptablesResyncSeconds     int
	iptablesForwardRules      bool
	healthzIP                 string
	healthzPort               int
	setNodeNetworkUnavailable bool
	cniConf                   string
	cniConfOut                string
	version                   bool
}

var ready atomic.Bool // subnet.env and the CNI configuration are written

func parseFlags() options {
	var o options
	fs := flag.NewFlagSet("flanneld", flag.ExitOnError)
	fs.BoolVar(&o.kubeSubnetMgr, "kube-subnet-mgr", false, "use the Kubernetes API for subnet assignment (the only manager built in)")
	fs.StringVar(&o.kubeAPIURL, "kube-api-url", "", "Kubernetes API server URL (in a pod: not needed)")
	fs.StringVar(&o.kubeConfigFile, "kubeconfig-file", "", "kubeconfig file (in a pod: not needed)")
	fs.StringVar(&o.kubeAnnotationPrefix, "kube-annotation-prefix", "flannel.alpha.coreos.com", "node annotation prefix")
	fs.StringVar(&o.iface, "iface", "", "interface (name or IP) for traffic between hosts; default: the default route's")
	fs.StringVar(&o.publicIP, "public-ip", "", "IP other nodes reach this one on")
	fs.BoolVar(&o.ipMasq, "ip-masq", false, "masquerade traffic from the flannel network to anything outside it")
	fs.StringVar(&o.subnetFile, "subnet-file", "/run/flannel/subnet.env", "where the lease is written")
	fs.StringVar(&o.netConfPath, "net-config-path", "/etc/kube-flannel/net-conf.json", "network configuration")
	fs.IntVar(&o.iptablesResyncSeconds, "iptables-resync", 5, "resync period of the iptables rules, seconds")
	fs.BoolVar(&o.iptablesForwardRules, "iptables-forward-rules", true, "accept the flannel network in FORWARD")
	fs.StringVar(&o.healthzIP, "healthz-ip", "0.0.0.0", "healthz listen address")
	fs.IntVar(&o.healthzPort, "healthz-port", 0, "healthz listen port (0: off)")
	fs.BoolVar(&o.setNodeNetworkUnavailable, "set-node-network-unavailable", true, "set NetworkUnavailable false when ready")
	fs.StringVar(&o.cniConf, "cni-conf", "", "CNI configuration list naming the flannel plugin (kube-flannel-cfg's cni-conf.json)")
	fs.StringVar(&o.cniConfOut, "cni-conf-out", "/etc/cni/net.d/10-flannel.conflist", "where the delegated configuration goes")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	log.InitFlags(nil)
	for _, name := range []string{"v", "vmodule"} {
		fs.Var(flag.Lookup(name).Value, name, flag.Lookup(name).Usage)
	}
	_ = flag.Set("logtostderr", "true")
	if err := fs.Parse(os.Args[1:]); err != nil {
		fail("cannot parse the flags: %v", err)
	}
	return o
}

func fail(format string, args ...any) {
	log.Errorf(format, args...)
	log.Flush()
	os.Exit(1)
}

func main() {
	o := parseFlags()
	if o.version {
		fmt.Println(version.Version)
		return
	}
	if !o.kubeSubnetMgr {
		fail("this flanneld has only the Kubernetes subnet manager: pass --kube-subnet-mgr")
	}
	log.Infof("flanneld %s (seatrials lab build: kube subnet manager, vxlan and host-gw backends)", version.Version)
	ctx, cancel := context.WithCancel(context.Background())
	wg := sync.WaitGroup{}
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
		<-signals
		log.Info("signal received: shutting down")
		cancel()
	}()

	sm, err := kube.NewSubnetManager(ctx, o.kubeAPIURL, o.kubeConfigFile, o.kubeAnnotationPrefix, o.netConfPath,
		o.setNodeNetworkUnavailable)
	if err != nil {
		fail("Failed to create SubnetManager: %v", err)
	}
	if o.healthzPort > 0 {
		serveHealthz(ctx, &wg, net.JoinHostPort(o.healthzIP, strconv.Itoa(o.healthzPort)))
	}
	config, err := networkConfig(ctx, sm)
	if err != nil {
		wg.Wait()
		return
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		fail("Failed to check br_netfilter: %v", err)
	}
	extIface := externalInterface(ctx, sm, o)
	be, err := backend.NewManager(ctx, sm, extIface).GetBackend(config.BackendType)
	if err != nil {
		fail("Error fetching backend: %v", err)
	}
	bn, err := be.RegisterNetwork(ctx, &wg, config)
	if err != nil {
		fail("Error registering network: %v", err)
	}
	traffic := &iptables.IPTablesManager{}
	if err := traffic.Init(ctx); err != nil {
		fail("Failed to initialize iptables: %v", err)
	}
	if o.ipMasq {
		// The lease of a previous run (a restarted pod): its rules are replaced when the lease changed.
		prevNetwork, prevSubnet := previousLease(o.subnetFile)
		none6 := ip.IP6Net{IP: (*ip.IP6)(big.NewInt(0))}
		if err := traffic.SetupAndEnsureMasqRules(ctx, config.Network, prevSubnet, prevNetwork, config.IPv6Network,
			none6, none6, bn.Lease(), o.iptablesResyncSeconds, false); err != nil {
			fail("Failed to setup masq rules: %v", err)
		}
	}
	if o.iptablesForwardRules {
		traffic.SetupAndEnsureForwardRules(ctx, config.Network, config.IPv6Network, o.iptablesResyncSeconds)
	}
	if err := sm.HandleSubnetFile(o.subnetFile, config, o.ipMasq, bn.Lease().Subnet, bn.Lease().IPv6Subnet, bn.MTU()); err != nil {
		fail("Failed to write subnet file: %v", err)
	}
	log.Infof("Wrote subnet file to %s", o.subnetFile)
	if o.cniConf != "" {
		if err := writeCNIConf(o.cniConf, o.cniConfOut, o.subnetFile); err != nil {
			fail("Failed to write the CNI configuration: %v", err)
		}
		log.Infof("Wrote the CNI configuration to %s", o.cniConfOut)
	}
	ready.Store(true)
	log.Info("flannel is ready; running backend")
	wg.Add(1)
	go func() {
		bn.Run(ctx)
		wg.Done()
	}()
	if err := sm.CompleteLease(ctx, bn.Lease(), &wg); err != nil {
		log.Errorf("CompleteLease: %v", err)
		cancel()
	}
	wg.Wait()
	log.Info("Exiting cleanly")
}

// networkConfig asks until the network configuration is there (flannel retries every second).
func networkConfig(ctx context.Context, sm subnet.Manager) (*subnet.Config, error) {
	for {
		config, err := sm.GetNetworkConfig(ctx)
		if err == nil && config != nil {
			log.Infof("Found network config - Backend type: %s", config.BackendType)
			return config, nil
		}
		log.Errorf("Couldn't fetch network config: %v", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func externalInterface(ctx context.Context, sm subnet.Manager, o options) *backend.ExternalInterface {
	publicIP := o.publicIP
	if stored, _ := sm.GetStoredPublicIP(ctx); stored != "" {
		publicIP = stored
	}
	stack, err := ipmatch.GetIPFamily(true, false)
	if err != nil {
		fail("%v", err)
	}
	name := o.iface
	if name == "" {
		name = publicIP
	}
	iface, err := ipmatch.LookupExtIface(name, "", "", stack, ipmatch.PublicIPOpts{PublicIP: publicIP})
	if err != nil {
		fail("Failed to find the interface to use (%q): %v", name, err)
	}
	return iface
}

func serveHealthz(ctx context.Context, wg *sync.WaitGroup, address string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("flanneld is running"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("flanneld is not ready yet"))
			return
		}
		_, _ = w.Write([]byte("flanneld is ready"))
	})
	server := &http.Server{Addr: address, Handler: mux}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail("healthz server: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
}

// writeCNIConf writes the configuration list with every "flannel" plugin replaced by the bridge
// configuration flannel's CNI plugin would delegate to, from the lease in subnet.env.
func writeCNIConf(template, out, subnetFile string) error {
	var conf map[string]any
	text, err := os.ReadFile(template)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(text, &conf); err != nil {
		return fmt.Errorf("%s: %w", template, err)
	}
	lease, err := readSubnetEnv(subnetFile)
	if err != nil {
		return err
	}
	plugins, _ := conf["plugins"].([]any)
	for i, p := range plugins {
		if plugin, _ := p.(map[string]any); plugin["type"] == "flannel" {
			delegate, _ := plugin["delegate"].(map[string]any)
			plugins[i] = delegated(delegate, lease)
		}
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	partial := out + ".partial"
	if err := os.WriteFile(partial, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(partial, out) // the runtime watches the directory: it sees the whole file at once
}

// previousLease is the network and subnet in subnet.env from an earlier run, zero when there is none.
func previousLease(path string) (network, sn ip.IP4Net) {
	env, err := readSubnetEnv(path)
	if err != nil {
		return network, sn
	}
	_, n, _ := net.ParseCIDR(env.network)
	_, s, _ := net.ParseCIDR(env.subnet)
	return ip.FromIPNet(n), ip.FromIPNet(s)
}

type subnetEnv struct {
	network, subnet string
	mtu             int
	ipMasq          bool
}

func readSubnetEnv(path string) (subnetEnv, error) {
	var env subnetEnv
	text, err := os.ReadFile(path)
	if err != nil {
		return env, err
	}
	values := map[string]string{}
	for _, line := range strings.Split(string(text), "\n") {
		if key, value, ok := strings.Cut(line, "="); ok {
			values[key] = value
		}
	}
	for _, key := range []string{"FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"} {
		if values[key] == "" {
			return env, fmt.Errorf("%s has no %s", path, key)
		}
	}
	_, network, err := net.ParseCIDR(values["FLANNEL_NETWORK"])
	if err != nil {
		return env, err
	}
	_, sn, err := net.ParseCIDR(values["FLANNEL_SUBNET"])
	if err != nil {
		return env, err
	}
	if env.mtu, err = strconv.Atoi(values["FLANNEL_MTU"]); err != nil {
		return env, err
	}
	env.network, env.subnet, env.ipMasq = network.String(), sn.String(), values["FLANNEL_IPMASQ"] == "true"
	return env, nil
}

// delegated is flannel-io/cni-plugin's doCmdAdd: defaults the plugin fills in unless the delegate sets them.
func delegated(delegate map[string]any, lease subnetEnv) map[string]any {
	plugin := map[string]any{"type": "bridge"}
	for k, v := range delegate {
		plugin[k] = v
	}
	setDefault(plugin, "ipMasq", !lease.ipMasq) // flannel masquerades, or the bridge must
	setDefault(plugin, "mtu", lease.mtu)
	if plugin["type"] == "bridge" {
		setDefault(plugin, "isGateway", true)
	}
	plugin["ipam"] = map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": lease.subnet}}},
		"routes": []map[string]string{{"dst": lease.network}},
	}
	return plugin
}

func setDefault(m map[string]any, key string, value any) {
	if _, ok := m[key]; !ok {
		m[key] = value
	}
}
