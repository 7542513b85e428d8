"""char-lm presets for `char-shakespeare` (target: held-out plays <= 1.45 nats/char).

Select one with `TrainOptions(**TRAIN_PRESETS["cpu"], config={"preset": "cpu"}, ...)` (or
`aigc.kinds.make_config("char-lm", preset=...)`); explicit config fields override a preset.
Values are estimates from nanoGPT's published Shakespeare runs; bench/README.md has the timings.
"""

PRESETS: dict[str, dict] = {
    # one H200 for ~2 minutes: nanoGPT's Shakespeare model (10.7M parameters)
    "gpu": {
        "block_size": 256,    # ~4 lines of verse: enough to see the speaker's name and the metre
        "n_layer": 6,         # nanoGPT's Shakespeare depth
        "n_head": 6,          # head size 64 keeps SDPA on its fast kernels
        "n_embd": 384,        # nanoGPT's width: ~1.47 on tiny-shakespeare, and this corpus is 4x larger
        "dropout": 0.1,       # many epochs over the corpus: regularise against memorising it
        "bias": False,        # nanoGPT: no biases is slightly better and faster
    },
    # two CPU cores in <= 60 minutes: 3.2M parameters, about compute-optimal for ~6e14 FLOPs
    "cpu": {
        "block_size": 128,    # attention cost grows with its square; half the GPU context
        "n_layer": 4,         # depth buys more than width at this size
        "n_head": 4,          # head size 64, as on the GPU
        "n_embd": 256,        # Chinchilla's 20 tokens per parameter over 33M tokens gives ~2.5M parameters
        "dropout": 0.0,       # a 3M model does not memorise 4M characters in 8 epochs
        "bias": False,        # as on the GPU
    },
}

TRAIN_PRESETS: dict[str, dict] = {
    "gpu": {
        "batch_size": 128,          # 128 x 256 tokens a step fills an H200
        "lr": 2e-3,                 # a small model takes a high AdamW rate
        "lr_scale": False,          # the rate above is already for this batch
        "warmup": 200,              # short linear warm-up before the cosine decay
        "max_steps": 5000,          # sets the cosine schedule's length (~160M tokens)
        "max_minutes": 2.5,         # a safety stop: the schedule's tail is flat, so stopping at ~90% costs little
        "precision": "auto",        # bf16 on the GPU
        "eval_every": 250,          # a held-out point every few seconds of training
        "eval_metric": "nats_per_char",   # the target's unit
        "target": 1.45,             # the goal on the held-out plays
        "log_every": 50,            # enough points for a smooth curve
        "sample_every": 1000,       # a few text previews per run
        "ckpt_every": 1000,         # a resumable state every fifth of the run
    },
    "cpu": {
        "batch_size": 32,           # 32 x 128 tokens: ~0.4-0.65 s a step on two cores in bf16
        "lr": 2e-3,                 # as on the GPU
        "lr_scale": False,          # as on the GPU
        "warmup": 200,              # as on the GPU
        "max_steps": 8000,          # 33M tokens, ~8 epochs: 50-60 minutes at the step time above
        "max_minutes": 60,          # the budget this preset is sized for
        "precision": "auto",        # bf16 where the CPU computes it natively (~2x faster), else fp32
        "eval_every": 1000,         # evaluating costs CPU time that training needs
        "eval_metric": "nats_per_char",   # the target's unit
        "target": 1.45,             # the goal on the held-out plays
        "log_every": 100,           # enough points for a smooth curve
        "sample_every": 2000,       # a few text previews per run
        "ckpt_every": 1000,         # a crash loses at most ~8 minutes
    },
}
