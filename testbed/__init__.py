"""The one harness that tests/ and bench/ share: real components as processes.

- ports: free TCP ports that two pytest-xdist workers never both take;
- harness: waiting, scratch dirs, a Mosquitto from broker_config/, a fleet, agents;
- mqtt: a small synchronous MQTT v5 client for assertions;
- stack: a city's fleet (PostgreSQL database, broker, N serve, M ingest, the simulator)
  and the loss check by seq numbers;
- hotspot: the test hotspot in network namespaces, and iperf3 measurements through it.

Neither tests/ nor bench/ imports the other; both import this. It is not in the wheel.
"""
