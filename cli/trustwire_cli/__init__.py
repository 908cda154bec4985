"""The `trustwire` command."""
