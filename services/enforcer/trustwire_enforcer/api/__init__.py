"""The gRPC edge of the enforcer: the enforcer-to-enforcer ``AuthorizationService`` (server and
client), the control-plane clients (policy, flows, identity watch) and protobuf conversion.
Domain modules of the enforcer never import ``grpc`` or protobuf messages; this package does.
"""
