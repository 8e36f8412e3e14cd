"""Devices and their identity: the registry and claims, the fleet's CA (pki), cloned
cards, credential rotation and deregistration (revoke)."""
