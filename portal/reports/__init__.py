"""Aggregate reports: the ranking screen and marketing's report by origin.

Neither shows a contact's name, phone or email anywhere (page, fragment or
CSV): they count, they never list people who are customers.
"""
