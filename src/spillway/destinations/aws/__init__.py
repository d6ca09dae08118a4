"""What every AWS destination (S3, Kinesis, Firehose) shares: the four ways to authenticate,
sessions that assume roles with the project's External ID, the identity checks, and the
translation of AWS errors into advice and retry behaviour."""
