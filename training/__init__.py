"""QLoRA training and evaluation of the SOS adapter.

``cli`` (train/eval commands) -> ``train`` (the resumable loop) and ``evaluate`` (scoring
adapters side by side), built from: ``config`` (TrainConfig), ``data`` (rows, validation,
encoding), ``split`` (grouped train/eval split, catalog pairs), ``prepare`` (what a run reads),
``model`` (4-bit base, LoRA, optimizer), ``batches`` (step order, padding), ``checkpoints``
(resume, RNG), ``periodic_eval`` (best checkpoint), ``metrics`` and ``run_folder`` (outputs).
"""
