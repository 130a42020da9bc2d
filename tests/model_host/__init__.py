"""Tests of the local model host (server.model_host)."""
