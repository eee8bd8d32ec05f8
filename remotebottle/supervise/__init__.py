"""Supervision: the agent proposes what its manifest does not grant; the operator decides."""
