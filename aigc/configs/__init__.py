"""Training presets, one module per model kind: plain dicts, a one-line reason per value.

A kind finds its model presets here (aigc.kinds registers them); the matching training options
are ready to pass to TrainOptions."""
