"""Test support shared by every test directory: real backing servers and their fixtures."""
