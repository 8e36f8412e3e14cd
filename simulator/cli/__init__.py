"""`simpul-sim`'s verbs, one module each (`register(subparsers)`), registered in order by
simulator.cli.main."""
