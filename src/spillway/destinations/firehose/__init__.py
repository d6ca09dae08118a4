"""Amazon Data Firehose (Kinesis Data Firehose) delivery streams."""
