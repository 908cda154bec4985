"""Trustwire policy service."""
