"""The floor of the house: the broker's own domain types, below the connectors and the services.

Datasets and search types (``datasets``), PaNET techniques (``techniques``), physical units (``units``),
the states of the broker's objects (``states``), time helpers (``clock``) and the error tree (``errors``).
Nothing here imports another package of the project; every package may import this one.
"""
