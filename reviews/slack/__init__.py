"""Approvals on Slack: messages with buttons posted through the Web API, and the signed
interactivity requests that Slack sends when a reviewer clicks."""
