"""Azure Blob Storage: block blobs in a container, by connection string, account key or SAS."""
