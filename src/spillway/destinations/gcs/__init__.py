"""Google Cloud Storage: a bucket, written with a service account's JSON key."""
