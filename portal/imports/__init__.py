"""CSV import of contacts: upload, mapping, preview, background job."""

from portal.imports.views import bp

__all__ = ["bp"]
