"""Provisioning a box: register it with the fleet (or take a bundle prepared offline),
write its agent config and credentials to the card atomically, label it, and check
that it comes online. httpx is imported only where the fleet is spoken to (fleet.py)
and segno only for labels (label.py); the agent's config parser only in agent_config.py.
"""
