"""The job runtime: the dispatcher (claims, heartbeats, reaper, export requests; ``python -m
workers.runtime.dispatcher``), the runner that runs one claimed job's pipeline, the
database-backed sink, and the Ray engine (Tune trial for training, Ray tasks for the rest).

Nothing is imported here: the dispatcher process stays free of torch and of the pipeline."""
