"""Who may do what: local accounts, users, single sign-on and role permissions.
"""
