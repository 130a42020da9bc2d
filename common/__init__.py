"""Neutral modules that server/, training/ and bench/ may all import (nothing here imports them)."""
