"""The broker as a PaNOSC Search API: the LoopBack filter language (``filters``), filters as index searches
plus the broker's own checks (``plan``), records in the reference implementation's shapes (``records``), and
the API's calls answered from the index or live (``compat``)."""
