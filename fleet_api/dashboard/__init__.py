"""The command-centre dashboard: server-rendered pages with light JavaScript.

Every asset is served from here (uPlot is vendored from npm at `make setup`); nothing
comes from a CDN, so it works on a command centre's LAN with no internet.
"""
