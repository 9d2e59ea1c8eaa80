"""ROS-free robot runtime: image decoding, the clip buffer and the inference engine."""

from vas_ros.perception.engine import InferenceEngine, Prediction, resolve_model_path
from vas_ros.perception.frame_buffer import Clip, FrameBuffer
from vas_ros.perception.image_codec import ImageError, decode_compressed, decode_raw, encode_raw

__all__ = ['Clip', 'FrameBuffer', 'ImageError', 'InferenceEngine', 'Prediction',
           'decode_compressed', 'decode_raw', 'encode_raw', 'resolve_model_path']
