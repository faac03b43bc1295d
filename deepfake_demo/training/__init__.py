"""Training, evaluation and export of ensemble members."""
