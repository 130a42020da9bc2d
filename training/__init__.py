"""Training, evaluation and export of the CIFAR-10 models the stack serves."""
