"""The one exception evaluation raises for problems a user can fix (bad paths, mismatched data)."""


class EvaluationError(Exception):
    """A version directory or test set can't be evaluated; the message says why."""
