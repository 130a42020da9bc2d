"""`make bench` (issue 4): one machine, one model, one set of real encoded images, every way of
serving it side by side: the model in process, the Flask notebook way, TF Serving's gRPC API
called directly, and the gateway with batching on and off.

`python -m bench --help` lists the knobs; `bench/__main__.py` runs the whole thing. Servers and
load generators each run in their own process; the orchestrating process imports no TensorFlow.
"""
