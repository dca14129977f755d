"""FASTA streaming, profile datasets (native and legacy) and atomic writes."""
