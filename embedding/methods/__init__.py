"""Fitting methods: the ways from a photo back to a generator's code, each a :class:`~embedding.fitting.FittingMethod`.

| module | method |
|---|---|
| ``image2stylegan`` | W+ and noise embedding, phase by phase (Image2StyleGAN / Image2StyleGAN++): ``EmbeddingModule`` |
| ``pti`` | Pivotal Tuning Inversion: a W pivot, then the generator tuned per photo: ``PTIModule`` |
| ``dgp`` | Deep Generative Prior: a latent and the generator's weights fitted to a degraded photo: ``DGPModule`` |
| ``encoder`` | an encoder into W+ (one forward pass) and its training |
| ``swapping`` | the Swapping Autoencoder: structure and texture codes, its training and edits |
| ``tuned_weights`` | per-image copies of the synthesis weights and their stored differences (DGP, PTI) |
"""
