"""Trustwire enforcer service."""
