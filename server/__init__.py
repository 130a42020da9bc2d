"""Server side of the stack: the gRPC gateway and the local model host (TF Serving's API)."""
