"""The database: engine and migrations, the tables, the one write path (unit_of_work), the
audit trail, backups, storage faults, and reading courses.
"""
