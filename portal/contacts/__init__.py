"""Contacts and ownership: the list, the profile, assignment, visibility."""
