"""Trustwire: identity-based zero-trust network access control.

The shared library every service and the CLI build on:

- ``trustwire.errors``: the one exception tree (mapped to gRPC status codes at the edge).
- ``trustwire.policy``: the policy engine (domain code; no gRPC, no etcd).
- ``trustwire.runtime``: the gRPC server/client runtime every service uses.
- ``trustwire.api``: generated protobuf and gRPC stubs (do not edit; ``scripts/genproto``).
"""

__version__ = "0.1.0"
