"""Small services that behave like the ones the OData family's clients were written for, each
writing to a real SQLite database, with Flask-Batch's route where the client posts its batch.

Why: pyodata, azure-data-tables, office365-rest-python-client and azure-storage-blob check
what a service answers (statuses, headers, body shapes, the batch answer's own shape), so
each service here answers as the real one does for the calls its client makes, no more
(docs/odata-clients.md). ``store.py`` holds the database and its transaction hook.
"""
