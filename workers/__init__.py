"""Everything that runs on Ray: job runner, data, training, predictors, search, export."""
