"""Face toolkit: PyTorch ports of face-api's trained networks (shipped in ``embedding/assets/faces``).

Landmarks (:mod:`.landmarks`), identity descriptor (:mod:`.descriptor`), face detector
(:mod:`.detector`), age/gender/expression (:mod:`.attributes`) and FFHQ alignment (:mod:`.align`).
All networks are pure PyTorch, differentiable and run on any device. The functions below take
images in [-1, 1], as the generator renders them, with the whole image as the face crop.
"""

from embedding.faces.align import align_face, align_photo, find_faces
from embedding.faces.attributes import EXPRESSIONS, face_attributes
from embedding.faces.descriptor import face_descriptors, face_features, identity_distance
from embedding.faces.landmarks import face_landmarks, landmark_error

__all__ = ["EXPRESSIONS", "align_face", "align_photo", "face_attributes", "face_descriptors", "face_features",
           "face_landmarks", "find_faces", "identity_distance", "landmark_error"]
