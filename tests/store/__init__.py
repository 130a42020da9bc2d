"""Tests of the experiment store (`server.store`) on SQLite and on a real PostgreSQL."""
