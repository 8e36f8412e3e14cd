"""Simpul simulator: the other end of every wire, so CI needs no hardware."""
