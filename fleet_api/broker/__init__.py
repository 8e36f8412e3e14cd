"""The fleet's side of Mosquitto: running it (process), its access plugin, accounts and
bridges, what it must know (access), and the fleet's own MQTT clients (the ingest's
mqtt_link and the API's publisher)."""
