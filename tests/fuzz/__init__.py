"""Property-based fuzzing of the running gateway through real gRPC (hypothesis).

`make test` runs a short, derandomized pass; `make fuzz` runs the long profile and writes
docs/fuzz.md. See tests/fuzz/conftest.py for the profiles and the stack under test.
"""
