"""Scale-out entry points (Dask), kept thin: the work itself lives in the stages."""
