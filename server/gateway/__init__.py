"""The gRPC gateway: decode, resize, route and predict through a TF Serving backend."""
