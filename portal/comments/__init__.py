"""Comments on a contact's timeline, with @mentions of people who see it.

One blueprint, `comments`: views.py defines its routes; the comment text
filter (`comment_text`) is registered with it for every template.
"""

from portal.comments.views import bp

__all__ = ["bp"]
