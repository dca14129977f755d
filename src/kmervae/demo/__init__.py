"""``kmervae demo``: a mock metagenome cut from real genomes shipped with kmervae, run
through the whole pipeline."""

from kmervae.demo.inputs import DemoInputs, build_demo_inputs, demo_genomes, shipped_data

__all__ = ["DemoInputs", "build_demo_inputs", "demo_genomes", "shipped_data"]
