"""Virtual serial sensors on pseudo-terminals, speaking their devices' exact bytes."""
