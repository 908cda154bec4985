"""Trustwire gateway service."""
