"""The ingest: MQTT messages from the boxes into rows (consumer), written exactly once
(store), folded into rollups, and what the fleet can say about a box's presence."""
