"""`simpul-agent`'s verbs, one module each (`register(subparsers)`), registered in order
by agent.cli.main. Box commands sent by the fleet are agent.control, not these."""
