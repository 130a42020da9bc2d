"""Tests of the neutral `common` package."""
