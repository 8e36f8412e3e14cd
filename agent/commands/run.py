def register(sub):
    sub.add_parser("run").set_defaults(func=lambda a: 0)
