"""The learning loop around the stream: training examples from events (example_stream), the
trainer child process (trainer_process), snapshots over Kafka (snapshot_topic) and the model a
worker serves (model_keeper)."""
