"""The notification center: the list, marking read, the live unread badge,
and the mentions' notifications (made by jobs, after the commit).

One blueprint, `notifications`: views.py defines its routes; push.py keeps
every open tab's badge in step with the database, from any process.
"""

from portal.notifications.views import bp

__all__ = ["bp"]
