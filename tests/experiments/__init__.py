"""Tests of the experiments core (`server.experiments`)."""
