"""Face toolkit: PyTorch ports of face-api's trained networks (shipped in ``embedding/assets/faces``).

Landmarks (:mod:`.landmarks`), identity descriptor (:mod:`.descriptor`), face detector
(:mod:`.detector`), age/gender/expression (:mod:`.attributes`) and FFHQ alignment (:mod:`.align`).
All are pure PyTorch, differentiable and run on any device.
"""
