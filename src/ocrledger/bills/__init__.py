"""Bills as files people read: text, Markdown, CSV, JSON and HTML renderers, bill files from columns, diffs."""
