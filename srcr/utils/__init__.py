"""Small shared helpers: atomic file output, seeding, thread control."""
