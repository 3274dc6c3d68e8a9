"""What the engine learns: the multi-task model, its training, snapshots and serving-time scoring."""
