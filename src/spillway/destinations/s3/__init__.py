"""Amazon S3 and S3-compatible endpoints."""
