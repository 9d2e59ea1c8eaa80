"""ROS-free robot runtime: the clip buffer and the inference engine (image decoding,
shared with the data readers, lives in `vas_ros.data.image_codec` and is re-exported)."""

from vas_ros.data.image_codec import ImageError, decode_compressed, decode_raw, encode_raw
from vas_ros.perception.engine import InferenceEngine, Prediction, resolve_model_path
from vas_ros.perception.frame_buffer import Clip, FrameBuffer

__all__ = ['Clip', 'FrameBuffer', 'ImageError', 'InferenceEngine', 'Prediction',
           'decode_compressed', 'decode_raw', 'encode_raw', 'resolve_model_path']
