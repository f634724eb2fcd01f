"""Fast, exact variants of the reference computations, each in its own module and each tested
against the short reference it replaces:

- `label_upsample.upsampled_argmax`: labels of "bilinear resize, then argmax" without
  full-resolution class scores (reference: `F.interpolate` + `argmax`); `class_argmax`: argmax over
  the classes by `max`, several times faster on the CPU;
- `banded_average.average_probabilities_in_bands`: the multi-scale (+ flip) average of class
  probabilities one band of output rows at a time (reference: resize every scale, softmax, average);
- `banded_loss.banded_cross_entropy`: resize + cross-entropy and its gradient one band of label
  rows at a time (reference: `F.interpolate` + `F.cross_entropy`);
- `resize`: the bilinear weights of `F.interpolate` itself, which the three above share.
"""
