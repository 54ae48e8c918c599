"""The conversation log: a SQLite file, its schema history, and replay of failed requests.

``database`` holds the blocking connection and its queries, ``migrations``
the schema's history, ``records`` the rows as values, ``async_store`` the
thread-bridged face the Trio side calls.
"""
