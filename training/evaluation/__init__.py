"""Evaluation reports for exported model versions, and comparisons of two versions.

`python -m training report` runs one exported SavedModel over the CIFAR-10 test set and writes
`report.md`, its pictures and `metrics.json`; `python -m training compare` does the same for two
versions side by side, with McNemar's test. Modules, from the bottom up:

- `metrics`: pure numpy statistics (confusion, precision/recall/F1, ROC/AUC, McNemar, agreement).
- `versions`: find a version directory and read what training left in `assets.extra/`.
- `dataset`: the test set the models are run on.
- `predict`: run a SavedModel's serving signature in batches, and time it.
- `evaluate`: one model over the test set, every number the report needs.
- `plots`, `markdown`, `report`, `compare`: pictures, text and files.

Importing this package does not import TensorFlow; `predict` does.
"""
