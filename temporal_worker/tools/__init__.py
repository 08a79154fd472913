"""The agent's tools. A tool is declared once, with `registry.tool`, in one small module."""
