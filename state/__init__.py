"""What the engine remembers: per-user and per-item state and the rules that update it.

Pure Python: nothing here imports Faust, Kafka or TensorFlow. Agents load a state from its RocksDB
table, apply an event with these functions and write it back; offline evaluation replays events
through the same functions, so offline figures describe the online engine.
"""
