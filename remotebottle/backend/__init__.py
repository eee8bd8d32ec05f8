"""Bottle backends: what runs a bottle on a container engine. Knows nothing of hosts."""
