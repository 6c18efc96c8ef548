"""The paper's study on a pretrained language model with SAEs the toolkit trained (issue 21): what it runs
(``config``), the measurements only it makes (``measures``: the offline mitigation measures) and its report
(``report``). The runner is ``realmodels.experiments.lm_study.run_lm_study``."""
