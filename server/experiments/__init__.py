"""Experiments: comparing models and versions on live traffic (transport-free core).

Definitions and their validation, sticky weighted assignment, shadow copies, the prediction log,
and the report with its sequential verdict. The gateway wires these to gRPC and HTTP; the store
(`server.store`) keeps what they record.
"""
