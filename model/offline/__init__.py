"""The model's offline side: public data sets, prequential evaluation beside baselines, speed
benchmarks, plots, and the ``train`` / ``evaluate`` commands that write the warm start."""
