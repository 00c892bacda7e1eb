"""DRC (dual regression compression) and its baselines, written once for every model.

Only `widths.prunable_layers(model)` is model-specific (DRN, RLFN). The stages:
`search.search_widths` (channel-number search) -> `prune.dr_prune` (dual-regression channel
pruning) -> `finetune.finetune`; baselines in `baselines` (L1-norm, random, uniform). Channels are
removed physically only in `surgery.remove_channels`. A compressed model is stored with
`widths.save_compressed` and rebuilt by `widths.build_from_checkpoint(path)`.
"""
