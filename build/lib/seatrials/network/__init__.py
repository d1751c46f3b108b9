"""The probes and what they measure: deploying them, every network path between nodes, the evidence beside the
measurement, and the diagnosis that turns a failure pattern into a cause."""
