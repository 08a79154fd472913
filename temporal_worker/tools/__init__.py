"""Tools: the registry every process shares (`tool_registry()`) and the planner that
validates and classifies the model's calls."""
