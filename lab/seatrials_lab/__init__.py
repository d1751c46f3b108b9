"""The seatrials lab: a real multi-node Kubernetes cluster on one Linux machine.

Start at cluster.py (up, down, status); every other module is one concern of it.
"""
