"""Trustwire identity service."""
