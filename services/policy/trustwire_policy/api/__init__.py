"""The gRPC edge of the policy service: servicer, authorization table, message conversion."""
