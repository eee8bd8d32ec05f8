"""Hosts: where an engine runs. Providers turn a host entry into a Machine.

This package knows nothing of bottles.
"""
