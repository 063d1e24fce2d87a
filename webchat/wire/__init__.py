"""Wire formats: how entries and requests look on `/ws` and in the REST API."""
