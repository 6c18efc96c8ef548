"""The toy emergent-misalignment study: fine-tuning on a benign narrow task raises features labelled harmful,
and geometry (proximity to the harmful directions) predicts by how much.

- ``harmful``      the harmful set H and the misalignment metrics R, E (measured and first-order predicted)
- ``tasks``        narrow tasks: a benign target, its context pool, overtly harmful samples; the probe set
- ``mitigations``  registry MITIGATIONS: geometry filter, random removal, surface judge, regulariser, penalty
- ``config``       every config of the studies (the default world, StudyConfig, cross-field checks), torch-free
                   so the CLI validates before importing the rest
- ``measure``      per-task measurement shared by the studies (proximity, fine-tune, R, E, gain)
- ``inducing``     study: inducing vs non-inducing tasks          (``toysuper inducing``)
- ``mitigate``     study: the mitigations at one removal budget   (``toysuper mitigate``)
- ``geometry``     study: before/after directions of a 2-D model  (``toysuper geometry``)
- ``sweep``        study: the superposition-density grid          (``toysuper density``)
- ``plots``        the studies' figures

The studies import the shared modules, never each other."""
