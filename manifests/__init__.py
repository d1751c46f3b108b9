"""The probes' manifests and the suite's least-privilege RBAC, shipped as package data (seatrials.manifests)."""
