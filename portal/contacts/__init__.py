"""Contacts: the list, the profile, assignment and the hand-over of owners.

One blueprint, `contacts`: views.py defines it with the list's routes and
profile.py adds the profile's (importing profile imports views).
"""

from portal.contacts.profile import bp

__all__ = ["bp"]
