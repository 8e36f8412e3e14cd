"""`simpul-field` verbs, one module each (see simpul_field/cli.py). "Verb", not
"command": a command elsewhere is what the fleet sends a box."""
