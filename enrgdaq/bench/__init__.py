"""``enrgdaq bench``: the data plane measured through the job API, with its baselines."""
