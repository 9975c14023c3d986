"""Contacts: the list, the profile, assignment and the hand-over of owners.

One blueprint, `contacts`: views.py defines it with the list page's routes;
list_actions.py and profile.py add theirs when imported, here.
"""

from portal.contacts import list_actions, profile  # noqa: F401  (add routes to bp)
from portal.contacts.views import bp

__all__ = ["bp"]
