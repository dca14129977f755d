"""From FASTA files to clusters, a map, quality figures and a report, stage by stage, each
stage an existing command; a rerun skips what is up to date (``kmervae pipeline``)."""

from kmervae.pipeline.run import PipelineResult, StageOutcome, run_pipeline

__all__ = ["PipelineResult", "StageOutcome", "run_pipeline"]
