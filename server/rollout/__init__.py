"""Rolling out a new model version: shadow, canary ramp, analysis, then promote or roll back.

`plan` reads the plans of `serving_config/rollout.toml`; `analysis` judges a step from the
experiment's reports; `driver` is the state machine, kept in the store so it can resume;
`status` renders a rollout; `python -m server.rollout` is the command line.
"""
