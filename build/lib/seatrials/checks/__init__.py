"""The checks that read the cluster directly: kubelet, apiserver, credentials, EC2 (AWS), Harbor and its registry."""
