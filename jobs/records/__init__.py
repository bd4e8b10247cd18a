"""The records the jobs write to (and read from) Kafka: one module per contract in ``schemas/``, mapping
the jobs' own types to the Avro record (a dict the codec encodes) and back. Pure; no Flink."""
