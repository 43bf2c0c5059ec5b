"""The broker as an OAI-PMH 2.0 data provider over the federated index (``/oai``)."""
