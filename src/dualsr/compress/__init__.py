"""DRC (dual regression compression) and its baselines, written once for every model.

Nothing here names a model: what may shrink comes from each model's spec, and `layers` does
everything with that description generically. The stages: `search.search_widths`
(channel-number search) -> `prune.dr_prune` (dual-regression channel pruning) ->
`finetune.finetune`; baselines in `baselines` (L1-norm, random, uniform). Channels are removed
physically only in `surgery.remove_channels`. A compressed model is saved with
`dualsr.checkpoint.save_weights` (its widths are part of its config) and rebuilt by
`dualsr.checkpoint.load`.
"""
