"""The control side of the agent: config twin, commands and their ledger."""
