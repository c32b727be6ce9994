"""store: where a processed message ends up — blobs on disk, rows in the database."""
