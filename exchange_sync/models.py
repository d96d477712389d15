"""Resources' mailboxes and their Outlook sync state (Exchange sync issues)."""
