"""seatrials: acceptance sea trials for newly built Kubernetes clusters."""
