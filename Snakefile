# srcr ablation suite: `snakemake --cores 2` runs the default suite (config/suite.yaml) on the
# embedded synthetic dataset; `--configfile config/suite_cityscapes.yaml` (and bdd100k, ade20k) the
# paper-scale ones; `--profile profiles/slurm` sends the jobs to a SLURM cluster. Every compute
# rule is one `srcr` call, so each step also runs by hand. See README.md, "The suite".

from snakemake.utils import min_version, validate

from srcr.config import load_yaml

min_version("9.0")


# A suite given with --configfile is the whole config: Snakemake would otherwise merge it, key by
# key and into nested dicts, over the default suite, and a paper-scale suite would inherit the
# default's synthetic pretraining.
if not workflow.overwrite_configfiles:

    configfile: "config/suite.yaml"


# Snakemake's own YAML reading keeps the last of two equal keys without a word: read every suite
# config again through srcr's loader, which names the file, line and key of a duplicate
for _path in workflow.overwrite_configfiles or ["config/suite.yaml"]:
    load_yaml(_path)


# `--config seeds=[0,1]` arrives as a list of strings; a seed is a non-negative integer (the
# schema's own message for "-1" would only say it is not an integer)
if isinstance(config.get("seeds"), list):
    config["seeds"] = [
        int(s) if str(s).lstrip("-").isdigit() else s for s in config["seeds"]
    ]
    _bad = [s for s in config["seeds"] if not isinstance(s, int) or s < 0]
    if _bad:
        raise ValueError(
            f"seeds: {_bad} not allowed; expected a list of non-negative integers, "
            "e.g. seeds: [0, 1] (or --config 'seeds=[0,1]')"
        )

validate(config, "workflow/schemas/suite.schema.json")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/flops.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        f"{RESULTS}/runs.csv",
        report_outputs(),
