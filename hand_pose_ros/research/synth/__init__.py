"""Synthetic data engine: photo-like renders of the open hand (seed 002 ManoRender/AngRender).

Heavy modules (OpenGL, torch) load on first use; import from the submodules:

- :mod:`.generator`: :class:`SynthConfig`, :class:`SynthGenerator` (one sample per index);
- :mod:`.dataset`: :func:`generate_dataset` (workers, shards, resume), seed splits;
- :mod:`.shards`: the on-disk format and :class:`SynthDataset` (torch loader);
- :mod:`.freihand`: :class:`FreiHANDDataset` in the same sample format;
- :mod:`.preview`: contact sheets;
- :mod:`.gl_renderer`, :mod:`.skin`, :mod:`.backgrounds`, :mod:`.augment`, :mod:`.scene`,
  :mod:`.views`, :mod:`.hand_source`, :mod:`.standin_hand`: the pieces.
"""
