"""Activities: all I/O of the agent. They run outside the workflow sandbox and may use Django."""
