"""MCP servers as a tool source: the tools they list (`tool`), the sessions the worker keeps
open to them (`connections`), and the refresher that lists them on a schedule (`refresher`).

Servers are registered in the admin; every process builds their tools from the last list the
worker stored, so the web (a reviewer's edit) and the worker see the same tools."""
