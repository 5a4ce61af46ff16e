"""The ablation suite: the variant grid (ablations/*.yaml), the plan a suite config makes of it
(what the Snakemake workflow runs), the table of every run (runs.csv) and the plain tables."""
