"""Federated dataset search: the broker's dataset model, the index (Tantivy or Elasticsearch), live
fan-out to facility Search APIs, and the PaNET technique ontology."""
