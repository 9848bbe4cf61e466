"""Edits of fitted codes: activation-tensor operations, morphing and mixing (``operations``), attribute
directions (``directions``) and constrained edits (``constrained``)."""
