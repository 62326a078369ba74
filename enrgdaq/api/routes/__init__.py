"""The API's endpoints, one module per resource: jobs, logs, system (status, nodes, templates)."""
