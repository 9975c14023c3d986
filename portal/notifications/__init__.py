"""The notification center: the list, marking read, the live unread badge,
the mentions' notifications (made by jobs, after the commit) and the mail
digest of what someone missed.

One blueprint, `notifications`: views.py defines its routes; push.py keeps
every open tab's badge in step with the database, from any process;
digest.py mails what waited unread while its reader was away.
"""

from portal.notifications.views import bp

__all__ = ["bp"]
