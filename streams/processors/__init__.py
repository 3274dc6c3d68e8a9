"""What happens to each consumed message: plain classes over a :class:`~streams.processors.base.Store`,
knowing nothing of Faust or Kafka."""
