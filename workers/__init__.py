"""Everything that runs on Ray. The ML library: ``data``, ``training``, ``search``,
``predictors``, ``latency``, ``evaluation``, ``export``, ``bn``. A job's stages on top of it:
``pipeline`` (written against a sink and an engine). The job runtime that runs them from the
store: ``runtime`` (dispatcher, runner, DB sink, Ray engine)."""
